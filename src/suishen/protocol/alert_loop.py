"""An alert's closed loop as ONE transition table (h11 _state.py style), pure.

The district's loop 接报、受理、联动、处置、反馈 and its end (DESIGN §7)::

    received --accept--> accepted --dispatch--> dispatched --handle--> handled
             --feed_back--> fed_back --close--> closed

Each step is taken once, in order; any other (state, action) pair is refused with
TransitionError (an alert is never accepted twice, nor handled before it was dispatched, and a
closed alert takes nothing). Who took a step, when, its note, where a dispatch went and the
deadlines it sets are the caller's (central/alerts/), not the table's.

The states are protocol.vocabulary.AlertStep (LoopState is that enum): what the hub's
alerts.state and alert_events.step hold (migration 0007 added 'closed' to both CHECKs).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from suishen.protocol.errors import TransitionError
from suishen.protocol.vocabulary import AlertStep

__all__ = [
    "OPEN_STATES",
    "TRANSITIONS",
    "AlertAction",
    "LoopState",
    "allowed_actions",
    "next_state",
]


LoopState = AlertStep


class AlertAction(enum.StrEnum):
    ACCEPT = "accept"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    FEED_BACK = "feed_back"
    CLOSE = "close"


TRANSITIONS: Final[Mapping[LoopState, Mapping[AlertAction, LoopState]]] = {
    LoopState.RECEIVED: {AlertAction.ACCEPT: LoopState.ACCEPTED},
    LoopState.ACCEPTED: {AlertAction.DISPATCH: LoopState.DISPATCHED},
    LoopState.DISPATCHED: {AlertAction.HANDLE: LoopState.HANDLED},
    LoopState.HANDLED: {AlertAction.FEED_BACK: LoopState.FED_BACK},
    LoopState.FED_BACK: {AlertAction.CLOSE: LoopState.CLOSED},
    LoopState.CLOSED: {},
}


def next_state(state: LoopState, action: AlertAction) -> LoopState:
    """The state after ``action``; TransitionError when the table does not allow it."""
    try:
        return TRANSITIONS[state][action]
    except KeyError:
        raise TransitionError(machine="alert_loop", state=str(state), event=str(action)) from None


# States in which an alert still waits for a step (each has exactly one next action).
OPEN_STATES: Final[frozenset[LoopState]] = frozenset(s for s, moves in TRANSITIONS.items() if moves)


def allowed_actions(state: LoopState) -> tuple[AlertAction, ...]:
    """The actions the table allows from ``state`` (none once closed)."""
    return tuple(TRANSITIONS[state])
