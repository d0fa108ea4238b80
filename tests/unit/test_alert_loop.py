"""protocol.alert_loop: the closed loop received -> ... -> closed as a transition table,
checked over every (state, action) pair (the hub's central/alerts/ walks this table)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol.alert_loop import TRANSITIONS, AlertAction, LoopState, next_state
from suishen.protocol.errors import TransitionError
from suishen.protocol.vocabulary import AlertStep

LOOP = [
    (LoopState.RECEIVED, AlertAction.ACCEPT, LoopState.ACCEPTED),
    (LoopState.ACCEPTED, AlertAction.DISPATCH, LoopState.DISPATCHED),
    (LoopState.DISPATCHED, AlertAction.HANDLE, LoopState.HANDLED),
    (LoopState.HANDLED, AlertAction.FEED_BACK, LoopState.FED_BACK),
    (LoopState.FED_BACK, AlertAction.CLOSE, LoopState.CLOSED),
]
PAIRS = list(itertools.product(LoopState, AlertAction))


def test_the_loop_states_are_the_vocabulary_steps() -> None:
    """The states are AlertStep's values in order, ending in closed (what the hub stores)."""
    assert [s.value for s in LoopState] == [s.value for s in AlertStep]
    assert list(AlertStep)[-1] is AlertStep.CLOSED
    assert set(TRANSITIONS) == set(LoopState)


@pytest.mark.parametrize(("state", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_every_state_and_action(state: LoopState, action: AlertAction) -> None:
    """Every (state, action) pair: the loop's next step gives its next state; every other
    pair raises TransitionError naming the machine, the state and the action."""
    allowed = {(s, a): to for s, a, to in LOOP}
    if (state, action) in allowed:
        assert next_state(state, action) is allowed[state, action]
        return
    with pytest.raises(TransitionError) as info:
        next_state(state, action)
    assert (info.value.machine, info.value.state, info.value.event) == (
        "alert_loop",
        state.value,
        action.value,
    )


@given(st.lists(st.sampled_from(AlertAction), max_size=20))
def test_any_action_sequence_walks_the_loop_in_order(actions: list[AlertAction]) -> None:
    """Whatever actions come, the states an alert takes are a prefix of the loop, each step
    at most once, and nothing follows closed."""
    state, visited = LoopState.RECEIVED, [LoopState.RECEIVED]
    for action in actions:
        try:
            state = next_state(state, action)
        except TransitionError:
            continue
        visited.append(state)
    assert visited == list(LoopState)[: len(visited)]
