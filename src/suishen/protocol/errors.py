"""The protocol layer's exception tree.

Expected outcomes (an expired code, a bad signature) are values, not exceptions: verify()
returns a Rejection. These exceptions are raised by the building blocks and mean the input
broke a format's contract; each carries the Reason the verifier reports for it::

    ProtocolError
     +-- CodeRejected        a verification step failed; `reason` says which (verify() turns
     |    |                  it into a Rejection value)
     |    +-- DecodeError    bytes or text that do not parse (base45, zlib, CBOR, COSE, claims)
     +-- TrustListError      a trust file or trust entry that cannot be used
     +-- BundleError         a signed bundle that is malformed, badly signed, or stale
     +-- SigningError        a key that cannot sign with the requested algorithm
     +-- TransitionError     an input a state table (device_state, alert_loop) forbids in
                             the current state; `machine`, `state` and `event` say which
"""

from __future__ import annotations

from suishen.protocol.reasons import Reason


class ProtocolError(Exception):
    """Base of every error raised by suishen.protocol."""


class CodeRejected(ProtocolError):
    """A verification step failed; `reason` is the reason code verify() reports."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DecodeError(CodeRejected, ValueError):
    """Input that does not parse; `reason` is the verifier's reason code for it."""


class TrustListError(ProtocolError, ValueError):
    """A trust file or entry that cannot be used (names the entry and the problem)."""


class BundleError(ProtocolError, ValueError):
    """A signed bundle that must be refused; `problem` is machine-readable."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class SigningError(ProtocolError, ValueError):
    """A key that does not fit the requested algorithm."""


class TransitionError(ProtocolError, ValueError):
    """A state table forbids ``event`` in ``state`` (machine fields, no free text needed)."""

    def __init__(self, *, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: {event} is not allowed in state {state}")
        self.machine = machine
        self.state = state
        self.event = event
