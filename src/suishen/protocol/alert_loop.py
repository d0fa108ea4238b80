"""An alert's closed loop as a transition table (h11 _state.py style): pure, not wired yet.

The district's loop 接报、受理、联动、处置、反馈 and its end (DESIGN §7)::

    received --accept--> accepted --dispatch--> dispatched --handle--> handled
             --feed_back--> fed_back --close--> closed

Each step is taken once, in order; any other (state, action) pair is refused with
TransitionError (an alert is never accepted twice, nor handled before it was dispatched, and a
closed alert takes nothing). Who took a step, when, its note and the deadlines it sets are the
caller's (central/alerts/), not the table's.

LoopState's first five values are protocol.vocabulary.AlertStep's (the hub's SQL CHECK holds
those); "closed" is not in AlertStep yet: wiring this table to the hub adds it there and to
the CHECK constraints in one migration.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from suishen.protocol.errors import TransitionError

__all__ = ["TRANSITIONS", "AlertAction", "LoopState", "next_state"]


class LoopState(enum.StrEnum):
    RECEIVED = "received"  # 接报
    ACCEPTED = "accepted"  # 受理
    DISPATCHED = "dispatched"  # 联动
    HANDLED = "handled"  # 处置
    FED_BACK = "fed_back"  # 反馈
    CLOSED = "closed"


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
