r"""A device's state as a transition table (h11 _state.py style): pure, no logging, no clock.

Every driver reports its state through drivers.base.DeviceStatus, which asks ``step()`` what a
change means and then does what the answer says (log, notify its listeners). The rule the
table holds is Home Assistant's log-when-unavailable one (DESIGN §9.8): "device down" is
logged once per outage and "device back" once when it ends, however many failures come in
between (a failing device goes DISCONNECTED <-> ERROR without a new line).

A phase is the state the world sees (DeviceState) plus whether the device was ever up, which
decides between "device connected" (first time) and "device back" (after an outage), and
whether a failure straight after start is an outage (never up: yes, logged once)::

    from \ to                      CONNECTING  CONNECTED   DISCONNECTED or ERROR
    CONNECTING, never up            -           connected   down
    DISCONNECTED/ERROR, never up    quiet       back        quiet
    CONNECTED                       quiet       -           down
    CONNECTING, been up             -           back        quiet
    DISCONNECTED/ERROR, been up     quiet       back        quiet

("-": no change; "quiet": a change the listeners hear, nothing logged; a move to
DISCONNECTED or ERROR records its detail as the device's last error.)

Asking for the state a device is already in is no change: nothing logged, nobody notified.
(CONNECTED, never up) cannot be reached (reaching CONNECTED makes a device "been up"):
``step()`` from it raises TransitionError, like any pair the table does not hold.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from suishen.protocol.errors import TransitionError

__all__ = ["TRANSITIONS", "DeviceLog", "DeviceState", "Phase", "Step", "first_phase", "step"]


class DeviceState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"


class DeviceLog(enum.StrEnum):
    """The line a change is logged with (its text is the log event)."""

    CONNECTED = "device connected"  # up for the first time (info)
    BACK = "device back"  # up again after an outage (info)
    DOWN = "device down"  # an outage begins (warning, with the detail)


@dataclass(frozen=True, slots=True)
class Phase:
    state: DeviceState
    been_up: bool  # ever CONNECTED since the driver was made


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What a change does: the next phase, the line to log (or none), whether the listeners
    hear it (False: no change), and whether its detail becomes the device's last error."""

    to: Phase
    log: DeviceLog | None = None
    changed: bool = True
    records_error: bool = False


_C, _U, _D, _E = (
    DeviceState.CONNECTING,
    DeviceState.CONNECTED,
    DeviceState.DISCONNECTED,
    DeviceState.ERROR,
)
_NEW, _UP = False, True  # been_up


def _same(phase: Phase) -> Step:
    return Step(to=phase, changed=False)


def _up(log: DeviceLog) -> Step:
    return Step(to=Phase(_U, _UP), log=log)


def _fail(state: DeviceState, been_up: bool, *, log: bool) -> Step:
    return Step(to=Phase(state, been_up), log=DeviceLog.DOWN if log else None, records_error=True)


TRANSITIONS: Final[Mapping[Phase, Mapping[DeviceState, Step]]] = {
    Phase(_C, _NEW): {
        _C: _same(Phase(_C, _NEW)),
        _U: _up(DeviceLog.CONNECTED),
        _D: _fail(_D, _NEW, log=True),
        _E: _fail(_E, _NEW, log=True),
    },
    Phase(_D, _NEW): {
        _C: Step(to=Phase(_C, _NEW)),
        _U: _up(DeviceLog.BACK),
        _D: _same(Phase(_D, _NEW)),
        _E: _fail(_E, _NEW, log=False),
    },
    Phase(_E, _NEW): {
        _C: Step(to=Phase(_C, _NEW)),
        _U: _up(DeviceLog.BACK),
        _D: _fail(_D, _NEW, log=False),
        _E: _same(Phase(_E, _NEW)),
    },
    Phase(_U, _UP): {
        _C: Step(to=Phase(_C, _UP)),
        _U: _same(Phase(_U, _UP)),
        _D: _fail(_D, _UP, log=True),
        _E: _fail(_E, _UP, log=True),
    },
    Phase(_C, _UP): {
        _C: _same(Phase(_C, _UP)),
        _U: _up(DeviceLog.BACK),
        _D: _fail(_D, _UP, log=False),
        _E: _fail(_E, _UP, log=False),
    },
    Phase(_D, _UP): {
        _C: Step(to=Phase(_C, _UP)),
        _U: _up(DeviceLog.BACK),
        _D: _same(Phase(_D, _UP)),
        _E: _fail(_E, _UP, log=False),
    },
    Phase(_E, _UP): {
        _C: Step(to=Phase(_C, _UP)),
        _U: _up(DeviceLog.BACK),
        _D: _fail(_D, _UP, log=False),
        _E: _same(Phase(_E, _UP)),
    },
}


def first_phase() -> Phase:
    """A new driver's phase: connecting, never up."""
    return Phase(_C, _NEW)


def step(phase: Phase, target: DeviceState) -> Step:
    """What moving a device from ``phase`` to ``target`` does; TransitionError when the
    table holds no such pair."""
    try:
        return TRANSITIONS[phase][target]
    except KeyError:
        raise TransitionError(
            machine="device_state",
            state=f"{phase.state}{'' if phase.been_up else ' (never up)'}",
            event=str(target),
        ) from None
