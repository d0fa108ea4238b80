"""Emergency release as values (protocol/emergency.py) and its config ([emergency]): the
transition table for every (state, command, source), the persisted form and its errors, the
alarm input's debounce, and config errors that name their key with nothing half-applied."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from suishen.gateway.config import ConfigError, parse_config
from suishen.gateway.config.emergency import EntryMode, UhppoteAlarmSettings
from suishen.protocol.emergency import (
    AlarmDebounce,
    EmergencyCommand,
    EmergencySource,
    EmergencyState,
    EmergencyStateError,
    transition,
)
from tests.unit.test_config import minimal, problems

ACTIVE = EmergencyState(
    active=True, since=100.0, source=EmergencySource.LOCAL, actor="guard", note="drill"
)
NORMAL = EmergencyState()


@pytest.mark.parametrize(
    ("state", "command", "source"),
    list(itertools.product((NORMAL, ACTIVE), EmergencyCommand, EmergencySource)),
)
def test_every_transition_follows_the_table(
    state: EmergencyState, command: EmergencyCommand, source: EmergencySource
) -> None:
    """Declare from normal activates (stamped now, with who and why); declare when active
    changes nothing (the first declaration wins); end ends an active emergency only from
    LOCAL or HUB, never from the ALARM input; end when normal changes nothing."""
    step = transition(state, command, source=source, actor="x", note="n", now=200.0)
    if command is EmergencyCommand.DECLARE:
        expect_change = not state.active
        expect_active = True
    else:
        expect_change = state.active and source is not EmergencySource.ALARM
        expect_active = state.active and not expect_change
    assert step.changed is expect_change
    assert step.state.active is expect_active
    if expect_change:
        assert (step.state.since, step.state.source, step.state.actor) == (200.0, source, "x")
    else:
        assert step.state == state


def test_the_state_round_trips_and_bad_files_name_the_key() -> None:
    """as_dict/from_dict round-trip; a malformed persisted state names its key."""
    assert EmergencyState.from_dict(ACTIVE.as_dict()) == ACTIVE
    assert EmergencyState.from_dict(NORMAL.as_dict()) == NORMAL
    bad: list[tuple[Any, str]] = [
        ([], "state"),
        ({"active": "yes"}, "active"),
        ({"active": True, "since": "now"}, "since"),
        ({"active": True, "since": float("nan")}, "since"),
        ({"active": True, "source": "fire-brigade"}, "source"),
        ({"active": True, "actor": 5}, "actor"),
        ({"active": True, "note": "x" * 201}, "note"),
        ({"active": True, "note": "two\nlines"}, "note"),
    ]
    for data, field in bad:
        with pytest.raises(EmergencyStateError) as info:
            EmergencyState.from_dict(data)
        assert info.value.field == field, data


def test_debounce_gives_one_edge_per_stable_level() -> None:
    """A level counts once held for debounce_s: flapping faster gives no edge, a held set one
    rising edge, a held clear one falling edge; a clear input at start is no edge."""
    d = AlarmDebounce(debounce_s=0.1)
    assert d.feed(False, 0.0) is None
    assert d.feed(False, 0.2) is None  # baseline: clear, no edge
    assert d.stable is False
    t = 0.2
    for i in range(50):  # flapping every 10 ms
        t += 0.01
        assert d.feed(i % 2 == 0, t) is None
    assert d.feed(True, t + 0.01) is None
    assert d.feed(True, t + 0.12) is True
    assert d.feed(True, t + 0.5) is None
    assert d.feed(False, t + 0.6) is None
    assert d.feed(False, t + 0.71) is False


def test_an_input_set_at_start_is_a_rising_edge() -> None:
    """The gateway starts while the alarm is already on: that declares (after the hold)."""
    d = AlarmDebounce(debounce_s=0.05)
    assert d.feed(True, 1.0) is None
    assert d.feed(True, 1.06) is True


def emergency(section: dict[str, Any], lanes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = minimal()
    out = copy.deepcopy(data["lanes"][0])
    out.update(id="out-1", direction="out", gate={"kind": "modbus", "url": "tcp://127.0.0.1:1503"})
    data["lanes"].append(out)
    if lanes is not None:
        data["lanes"] = lanes
    data["emergency"] = section
    if section.get("alarm", {}).get("url", "").startswith("rtu:"):
        data["lanes"][0]["gate"]["url"] = section["alarm"]["url"]  # the same serial line
    return data


def test_the_emergency_section_parses_with_its_defaults() -> None:
    """Without [emergency]: entries held shut, no alarm input; exits always released; an
    override and an alarm input on a lane's own board parse."""
    config = parse_config(minimal())
    assert config.emergency.entries is EntryMode.HELD_SHUT
    assert config.emergency.alarm is None
    config = parse_config(
        emergency(
            {
                "entry_overrides": {"in-1": "released"},
                "alarm": {"kind": "modbus", "lane": "in-1", "input": 4},
            }
        )
    )
    in_1, out_1 = config.lanes
    assert config.emergency.mode(in_1) is EntryMode.RELEASED
    assert config.emergency.mode(out_1) is EntryMode.RELEASED
    assert config.emergency.alarm_board(config.lanes) == ("tcp://127.0.0.1:1502", 1)


def test_a_bad_emergency_section_names_the_key() -> None:
    """Unknown lanes, an exit in the overrides, an alarm with both or neither of url and lane,
    a lane without a Modbus board, the passage input reused, bad values: a ConfigError naming
    each key (the whole config is refused: nothing half-applied)."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"entries": "open"}, "emergency.entries"),
        ({"entry_overrides": {"nope": "released"}}, "emergency.entry_overrides.nope"),
        ({"entry_overrides": {"out-1": "held_shut"}}, "emergency.entry_overrides.out-1"),
        ({"alarm": {"kind": "modbus", "input": 1}}, "emergency.alarm.url"),
        (
            {"alarm": {"kind": "modbus", "input": 1, "lane": "in-1", "url": "tcp://h:1"}},
            "emergency.alarm.url",
        ),
        ({"alarm": {"kind": "modbus", "input": 1, "url": "udp://h:1"}}, "emergency.alarm.url"),
        ({"alarm": {"kind": "modbus", "input": 1, "lane": "nope"}}, "emergency.alarm.lane"),
        ({"alarm": {"kind": "modbus", "input": 0, "lane": "in-1"}}, "emergency.alarm.input"),
        ({"alarm": {"kind": "modbus", "input": -1, "lane": "in-1"}}, "emergency.alarm.input"),
        ({"alarm": {"kind": "bacnet", "input": 1, "lane": "in-1"}}, "emergency.alarm.kind"),
        ({"alarm_debounce_ms": -5}, "emergency.alarm_debounce_ms"),
        ({"poll_interval_s": 0}, "emergency.poll_interval_s"),
        ({"colour": "red"}, "emergency.colour"),
        (
            {"alarm": {"kind": "modbus", "input": 1, "url": "rtu:/dev/ttyS9"}},
            "emergency.alarm.url",
        ),
    ]
    for section, key in cases:
        found = problems(emergency(section))
        assert key in found, (section, found)
    rtu_lane = copy.deepcopy(minimal()["lanes"][0])
    rtu_lane["gate"] = {"kind": "modbus", "url": "rtu:/dev/ttyS9"}
    on_rtu = emergency({"alarm": {"kind": "modbus", "input": 1, "lane": "in-1"}}, [rtu_lane])
    assert "emergency.alarm.lane" in problems(on_rtu)
    desk = copy.deepcopy(minimal()["lanes"][0])
    desk["gate"] = {"kind": "none"}
    found = problems(emergency({"alarm": {"kind": "modbus", "input": 1, "lane": "in-1"}}, [desk]))
    assert "emergency.alarm.lane" in found


def with_controller(section: dict[str, Any]) -> dict[str, Any]:
    data = emergency(section)
    data["uhppote"] = [{"id": "c1", "serial": 405419896}]
    return data


def test_a_uhppote_alarm_input_parses_with_its_defaults() -> None:
    """alarm = { kind = "uhppote", controller = "c1" } names a configured controller; the bit
    defaults to 0 (uhppoted decodes inputs bit 0 as the fire alarm) and has no Modbus board."""
    config = parse_config(with_controller({"alarm": {"kind": "uhppote", "controller": "c1"}}))
    alarm = config.emergency.alarm
    assert isinstance(alarm, UhppoteAlarmSettings)
    assert (alarm.controller, alarm.bit) == ("c1", 0)
    assert config.emergency.alarm_board(config.lanes) is None
    config = parse_config(
        with_controller({"alarm": {"kind": "uhppote", "controller": "c1", "bit": 1}})
    )
    assert isinstance(config.emergency.alarm, UhppoteAlarmSettings)
    assert config.emergency.alarm.bit == 1


def test_a_bad_uhppote_alarm_input_names_the_key() -> None:
    """An unknown controller (with or without any [[uhppote]]), no controller, a bit outside
    0..7 or a Modbus-only key: a ConfigError naming the key, the whole config refused."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "uhppote", "controller": "nope"}, "emergency.alarm.controller"),
        ({"kind": "uhppote"}, "emergency.alarm.controller"),
        ({"kind": "uhppote", "controller": "c1", "bit": 8}, "emergency.alarm.bit"),
        ({"kind": "uhppote", "controller": "c1", "bit": -1}, "emergency.alarm.bit"),
        ({"kind": "uhppote", "controller": "c1", "input": 3}, "emergency.alarm.input"),
    ]
    for alarm, key in cases:
        found = problems(with_controller({"alarm": alarm}))
        assert key in found, (alarm, found)
    no_controllers = problems(emergency({"alarm": {"kind": "uhppote", "controller": "c1"}}))
    assert "emergency.alarm.controller" in no_controllers
    assert "none configured" in no_controllers["emergency.alarm.controller"]
    with pytest.raises(ConfigError) as caught:
        parse_config(with_controller({"alarm": {"kind": "uhppote", "controller": "c2"}}))
    assert "emergency.alarm.controller" in str(caught.value)
    assert "'c2'" in str(caught.value)
