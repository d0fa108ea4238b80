"""The small contracts every device driver implements, and the pieces they share.

A lane talks to three kinds of device, each through one typing.Protocol:

- ScanSource: an async iterator of RawScan (a QR text or a card number, as read);
- Gate: open (pulse), keep shut, the passage outcome after an open, and hold open / release
  the hold (emergency release: the gate stays open until released, across reconnects);
- Indicator: show a verdict (LED colour, beep pattern, short prompt).

Every driver owns its I/O, reconnects by itself with backoff after a cable pull or a device
restart, and reports its state through a DeviceStatus, which logs once when a device goes
down and once when it is back (Home Assistant's log-when-unavailable rule).

Exceptions (one tree for this layer; each carries the device_id)::

    DriverError
     +-- DeviceUnavailable     the device is not connected (now); the lane goes on
     +-- DeviceTimeout         the device did not answer in time
     +-- DeviceProtocolError   the device answered something we cannot understand
     +-- DeviceRefused         the device refused us (e.g. OSDP secure-channel key mismatch)
     +-- DeviceConfigError     the driver was configured with impossible settings
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import structlog

from suishen.protocol.backoff import Backoff, Jitter
from suishen.protocol.device_state import DeviceLog, DeviceState, Phase, first_phase, step
from suishen.protocol.vocabulary import PassageOutcomeKind

log = structlog.get_logger("suishen.drivers")


# --------------------------------------------------------------------------- exceptions


class DriverError(Exception):
    """Base of every driver error; carries the device it concerns."""

    def __init__(self, message: str, *, device_id: str) -> None:
        super().__init__(f"{device_id}: {message}")
        self.device_id = device_id


class DeviceUnavailable(DriverError):
    """The device is not connected now."""


class DeviceTimeout(DriverError):
    """The device did not answer within its deadline."""


class DeviceProtocolError(DriverError):
    """The device sent bytes that do not parse as its protocol."""


class DeviceRefused(DriverError):
    """The device refused the session (authentication or key mismatch)."""


class DeviceConfigError(DriverError):
    """The driver's settings cannot work (bad port, bad coil number, ...)."""


# --------------------------------------------------------------------------- records


class ScanKind(enum.StrEnum):
    QR = "qr"  # a scanned text (Suishen code, HC1, ID number, MRZ block)
    CARD = "card"  # a card number (Wiegand / IC card / controller swipe)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawScan:
    """One read from a scanner or card reader, before any verification."""

    device_id: str
    kind: ScanKind
    text: str  # QR text, or the card number in decimal
    symbology: str | None = None  # AIM id ("]Q1") when the scanner sent one
    received_mono: float  # time.monotonic() when the last byte arrived (for latency)
    received_at: float  # wall clock (POSIX seconds) of the same moment

    def __post_init__(self) -> None:
        if not self.device_id:
            raise ValueError("RawScan.device_id must not be empty")


# What a gate's sensor says after an open: the shared vocabulary's passage outcome.
PassageOutcome = PassageOutcomeKind


@dataclass(frozen=True, slots=True, kw_only=True)
class PassageReport:
    """What the gate's sensor said after an open."""

    device_id: str
    outcome: PassageOutcome
    elapsed_s: float  # from the open command to the outcome


class Colour(enum.StrEnum):
    GREEN = "green"
    RED = "red"
    AMBER = "amber"
    OFF = "off"


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A verdict as a person at the door sees and hears it."""

    colour: Colour
    beeps: tuple[int, ...] = ()  # alternating on/off durations in ms, starting with on
    prompt: str = ""  # short text or voice prompt where the device has a display/speaker
    hold_ms: int = 1500

    @classmethod
    def allow(cls, prompt: str = "") -> Signal:
        return cls(colour=Colour.GREEN, beeps=(100,), prompt=prompt)

    @classmethod
    def deny(cls, prompt: str = "") -> Signal:
        return cls(colour=Colour.RED, beeps=(100, 100, 100, 100, 100), prompt=prompt)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStateChanged:
    device_id: str
    state: DeviceState
    detail: str = ""
    at: float = field(default_factory=time.time)


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class Device(Protocol):
    """What every driver has: an id, a state, a start and a close."""

    device_id: str

    @property
    def state(self) -> DeviceState: ...

    async def start(self) -> None:
        """Begin connecting (in the background); returns without waiting for the device."""

    async def aclose(self) -> None:
        """Stop reconnecting and release the device."""


@runtime_checkable
class ScanSource(Device, Protocol):
    def scans(self) -> AsyncIterator[RawScan]:
        """Yield scans as they arrive, across reconnects, until aclose()."""


@runtime_checkable
class Gate(Device, Protocol):
    async def open(self, *, pulse_ms: int = 500) -> None:
        """Command the gate open; raises DeviceUnavailable/DeviceTimeout, never hangs."""

    async def keep_shut(self) -> None:
        """Make sure the gate stays shut (release any held relay)."""

    async def wait_passage(self, *, timeout_s: float) -> PassageReport:
        """After open(): PASSED when the sensor reports a passage, else NOT_PASSED at timeout."""

    async def hold_open(self) -> None:
        """Open and stay open (no pulse) until release_hold(); the driver re-applies the hold
        after a reconnect. While held, open() and keep_shut() change nothing."""

    async def release_hold(self) -> None:
        """End a hold: back to normal operation, shut."""


@runtime_checkable
class Indicator(Device, Protocol):
    async def show(self, signal: Signal) -> None:
        """Show a verdict; best effort (a dead indicator must not block a lane)."""


# --------------------------------------------------------------------------- shared helpers

StateListener = Callable[[DeviceStateChanged], None]


class DeviceStatus:
    """A device's current state, its listeners, and the once-down/once-back log rule (the
    transition table in protocol.device_state says what each change logs)."""

    def __init__(self, device_id: str, *, on_change: StateListener | None = None) -> None:
        self.device_id = device_id
        self._phase: Phase = first_phase()
        self._listeners: list[StateListener] = [on_change] if on_change else []
        self._log = log.bind(device_id=device_id)
        self.last_error = ""

    @property
    def state(self) -> DeviceState:
        return self._phase.state

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def set(self, state: DeviceState, detail: str = "") -> None:
        change = step(self._phase, state)
        if not change.changed:
            return
        self._phase = change.to
        if change.records_error:
            self.last_error = detail
        if change.log is DeviceLog.DOWN:
            # Logged once per outage: further failures while down stay DISCONNECTED/ERROR.
            self._log.warning(change.log.value, state=state.value, detail=detail)
        elif change.log is not None:
            self._log.info(change.log.value, state=state.value)
        event = DeviceStateChanged(device_id=self.device_id, state=state, detail=detail)
        for listener in self._listeners:
            listener(event)


def reconnect_backoff(*, initial_s: float = 0.05, cap_s: float = 5.0) -> Backoff:
    """The reconnect loops' backoff (protocol.backoff): doubling from ``initial_s`` up to
    ``cap_s``, equal jitter (a retry never comes at once). A cap below ``initial_s`` is
    raised to it (the gateway's settings refuse one; a driver built by hand may not)."""
    return Backoff(initial_s=initial_s, cap_s=max(cap_s, initial_s), jitter=Jitter.EQUAL)
