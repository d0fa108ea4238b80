"""The webhook signature (docs/WEBHOOKS.md), both ways: outbound deliveries and the callback.

Header ``X-Suishen-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``:
the HMAC covers the timestamp and the raw body bytes, so neither can be changed nor the
signature moved to another body. A receiver checks the timestamp is within ``WINDOW_S`` of its
clock and compares with ``hmac.compare_digest``; several ``v1=`` values may be given (secret
rotation) and one match suffices. Pure: the time is a parameter.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Final

__all__ = ["HEADER", "WINDOW_S", "SignatureError", "sign", "verify"]

HEADER: Final = "X-Suishen-Signature"
WINDOW_S: Final = 300  # a signed timestamp older (or newer) than this is refused
MAX_HEADER: Final = 1024


class SignatureError(ValueError):
    """A signature header that is missing, malformed, stale or matches no secret."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # missing | malformed | stale | mismatch


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    if len(header) > MAX_HEADER:
        raise SignatureError("signature header too long", reason="malformed")
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("signature header malformed", reason="malformed")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise SignatureError("signature timestamp malformed", reason="malformed")
            if len(value) > 12:
                raise SignatureError("signature timestamp malformed", reason="malformed")
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise SignatureError("signature header needs t= and v1=", reason="malformed")
    return timestamp, macs


def verify(
    header: str | None,
    body: bytes,
    secrets: Iterable[tuple[str, bytes]],
    *,
    now: float,
    window_s: int = WINDOW_S,
) -> tuple[str, str]:
    """The (name, v1 value) of the first secret in ``secrets`` ((name, secret) pairs) whose
    HMAC matches; SignatureError if the header is missing, malformed, stale or matches none."""
    if not header:
        raise SignatureError("no signature header", reason="missing")
    timestamp, macs = _parse(header)
    if abs(now - timestamp) > window_s:
        raise SignatureError("signature timestamp outside the window", reason="stale")
    for name, secret in secrets:
        expected = _mac(secret, timestamp, body)
        for given in macs:
            if hmac.compare_digest(expected.encode(), given.encode("ascii", "replace")):
                return name, expected
    raise SignatureError("signature does not match", reason="mismatch")
