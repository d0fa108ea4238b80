"""protocol.device_state: a device's state is a transition table, checked over every
(phase, input) pair, and drivers.base.DeviceStatus does what the table says."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from suishen.drivers.base import DeviceStateChanged, DeviceStatus
from suishen.protocol.device_state import (
    TRANSITIONS,
    DeviceLog,
    DeviceState,
    Phase,
    Step,
    first_phase,
    step,
)
from suishen.protocol.errors import TransitionError

C, U, D, E = (
    DeviceState.CONNECTING,
    DeviceState.CONNECTED,
    DeviceState.DISCONNECTED,
    DeviceState.ERROR,
)
ALL_PHASES = [Phase(s, up) for s, up in itertools.product(DeviceState, (False, True))]
PAIRS = list(itertools.product(ALL_PHASES, DeviceState))


def rule_before_the_table(phase: Phase, target: DeviceState) -> Step:
    """DeviceStatus.set's rule as it was written before the table (the oracle: the table
    changes no behaviour)."""
    if target is phase.state:
        return Step(to=phase, changed=False)
    been_up, log = phase.been_up, None
    if target is U:
        log = DeviceLog.BACK if been_up or phase.state in (D, E) else DeviceLog.CONNECTED
        been_up = True
    elif target in (D, E) and (phase.state is U or (phase.state is C and not been_up)):
        log = DeviceLog.DOWN
    return Step(to=Phase(target, been_up), log=log, records_error=target in (D, E))


def reachable() -> set[Phase]:
    """Every phase a new device can reach through the table."""
    seen, todo = {first_phase()}, [first_phase()]
    while todo:
        phase = todo.pop()
        for change in TRANSITIONS[phase].values():
            if change.to not in seen:
                seen.add(change.to)
                todo.append(change.to)
    return seen


def test_the_table_holds_exactly_the_reachable_phases() -> None:
    """The table's phases are those a device can reach from its first phase, and each has
    an answer for every input; only (CONNECTED, never up) is missing."""
    assert set(TRANSITIONS) == reachable()
    assert set(ALL_PHASES) - set(TRANSITIONS) == {Phase(U, False)}
    for targets in TRANSITIONS.values():
        assert set(targets) == set(DeviceState)


@pytest.mark.parametrize(
    ("phase", "target"), PAIRS, ids=[f"{p.state}-{p.been_up}-{t}" for p, t in PAIRS]
)
def test_every_phase_and_input(phase: Phase, target: DeviceState) -> None:
    """Every (phase, input) pair: a pair in the table gives the table's next phase and log
    line, the same as the rule before the table; a pair outside it raises TransitionError."""
    if phase not in TRANSITIONS:
        with pytest.raises(TransitionError) as info:
            step(phase, target)
        assert (info.value.machine, info.value.event) == ("device_state", str(target))
        return
    change = step(phase, target)
    assert change == TRANSITIONS[phase][target]
    assert change == rule_before_the_table(phase, target)
    assert change.to.state is target
    assert change.changed is (target is not phase.state)
    assert (change.log is DeviceLog.DOWN) <= (target in (D, E))


@given(st.lists(st.sampled_from([U, D, E]), max_size=60))
def test_down_once_and_back_once(targets: list[DeviceState]) -> None:
    """Whatever a driver reports after start (it never goes back to connecting), the lines
    alternate: an outage is logged "down" once, its end "back" once; "connected" only first."""
    phase, lines = first_phase(), []
    for target in targets:
        change = step(phase, target)
        phase = change.to
        if change.log is not None:
            lines.append(change.log)
    assert all(a is not b for a, b in itertools.pairwise(lines))
    assert DeviceLog.CONNECTED not in lines[1:]


def test_device_status_logs_and_notifies_as_the_table_says() -> None:
    """A DeviceStatus through an outage with repeated failures: "device connected", one
    "device down", one "device back"; listeners hear each change and no repeat."""
    heard: list[DeviceStateChanged] = []
    status = DeviceStatus("lane-1/gate", on_change=heard.append)
    with capture_logs() as logs:
        for target, detail in [
            (U, ""),
            (D, "cable"),
            (E, "refused"),
            (E, "again"),
            (D, ""),
            (U, ""),
        ]:
            status.set(target, detail)
    lines = [(e["event"], e["log_level"]) for e in logs]
    assert lines == [
        ("device connected", "info"),
        ("device down", "warning"),
        ("device back", "info"),
    ]
    assert [h.state for h in heard] == [U, D, E, D, U]
    assert status.state is U
    assert status.last_error == ""
    assert logs[1]["detail"] == "cable"
