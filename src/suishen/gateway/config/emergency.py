"""Emergency release in the gateway config: ``[emergency]`` (issue 13, DESIGN §5).

    [emergency]
    entries = "held_shut"                  # or "released": what entry lanes do in an emergency
    entry_overrides = { garage-in = "released" }   # per entry lane (exits are always released)
    alarm = { kind = "modbus", url = "tcp://127.0.0.1:1503", unit = 1, input = 0 }
    # or on a lane's own Modbus board:  alarm = { kind = "modbus", lane = "in-1", input = 4 }
    # or a UHPPOTE controller's fire-alarm input:  alarm = { kind = "uhppote", controller = "c1" }
    poll_interval_s = 0.1
    alarm_debounce_ms = 200

Exit lanes (out, checkout) are always released and held open. The state (active, since,
source, actor, note) is kept in ``state_file`` (default: emergency.json next to the journal).
"""

# setting()/optional() wrap dataclasses.field (RUF009).
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Literal

from suishen.gateway.config.hardware import LaneSettings, ModbusGateSettings
from suishen.gateway.records import Direction
from suishen.protocol.turnstile import TurnstileConfigError, parse_endpoint
from suishen.settings import SettingError, choices, optional, setting

EXIT_DIRECTIONS = frozenset({Direction.OUT, Direction.CHECKOUT})


class EntryMode(enum.StrEnum):
    HELD_SHUT = "held_shut"  # the gate stays shut (nobody walks into a fire)
    RELEASED = "released"  # the gate is held open too


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModbusAlarmSettings:
    """The fire-alarm input: one Modbus discrete input (a dry contact of the alarm panel)."""

    kind: Literal["modbus"] = setting("input kind", "modbus")
    url: str | None = optional(
        "the board: tcp://HOST:PORT or rtu:SERIAL_URL (absent: give lane instead)"
    )
    lane: str | None = optional("use this lane's Modbus gate board (its url and unit)")
    unit: int = setting("Modbus unit id (with url)", 1, ge=1, le=247)
    input: int = setting("the discrete input the alarm contact is wired to", ge=0, le=65535)
    command_timeout_s: float = setting("deadline of one read", 0.25, ge=0.01, le=10)
    connect_timeout_s: float = setting("deadline of one connect attempt", 1.0, ge=0.01, le=60)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.lane is None):
            raise SettingError("url", "give exactly one of url and lane")
        if self.url is not None:
            try:
                parse_endpoint(self.url)
            except TurnstileConfigError as exc:
                raise SettingError("url", str(exc).removeprefix(f"{exc.field}: ")) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteAlarmSettings:
    """The fire-alarm input of a UHPPOTE controller: one bit of its get-status inputs byte.

    Read through the controller's link, shared with the lanes that use its doors or readers.
    """

    kind: Literal["uhppote"] = setting("input kind", "uhppote")
    controller: str = setting("the [[uhppote]] controller id whose input is read")
    bit: int = setting(
        "the bit of the status reply's inputs byte (0: the fire-alarm input, 1: lock forced)",
        0,
        ge=0,
        le=7,
    )


AlarmSettings = ModbusAlarmSettings | UhppoteAlarmSettings


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EmergencySettings:
    """Emergency release: exits held open, entries per config, until an explicit command."""

    entries: EntryMode = setting(
        "what entry lanes (in, checkin) do in an emergency: held_shut or released",
        EntryMode.HELD_SHUT,
    )
    entry_overrides: dict[str, EntryMode] = setting(
        "entry lane id -> held_shut | released, overriding entries for that lane", factory=dict
    )
    alarm: AlarmSettings | None = optional(
        "the fire-alarm input (absent: emergencies only by command)"
    )
    poll_interval_s: float = setting("how often the alarm input is read", 0.1, ge=0.01, le=5)
    alarm_debounce_ms: int = setting(
        "the alarm input must hold a level this long to count (a flapping input declares once)",
        200,
        ge=0,
        le=60000,
    )
    state_file: Path | None = optional(
        "where the emergency state survives a restart (absent: emergency.json next to the journal)"
    )

    def mode(self, lane: LaneSettings) -> EntryMode:
        """What ``lane`` does in an emergency (exits: always released)."""
        if lane.direction in EXIT_DIRECTIONS:
            return EntryMode.RELEASED
        return self.entry_overrides.get(lane.id, self.entries)

    def alarm_board(self, lanes: Sequence[LaneSettings]) -> tuple[str, int] | None:
        """(url, unit) of the Modbus alarm input's board, or None without one."""
        alarm = self.alarm
        if not isinstance(alarm, ModbusAlarmSettings):
            return None
        if alarm.url is not None:
            return alarm.url, alarm.unit
        gate = next(lane.gate for lane in lanes if lane.id == alarm.lane)
        assert isinstance(gate, ModbusGateSettings)
        return gate.url, gate.unit


def emergency_problems(
    settings: EmergencySettings,
    lanes: Sequence[LaneSettings],
    controllers: Collection[str] = (),
) -> Iterator[tuple[str, str]]:
    """Checks against the lanes and the [[uhppote]] controller ids: overrides name entry lanes,
    alarm.lane a Modbus-gated lane, alarm.controller a configured controller."""
    by_id = {lane.id: lane for lane in lanes}
    for lane_id in settings.entry_overrides:
        lane = by_id.get(lane_id)
        if lane is None:
            yield (
                f"emergency.entry_overrides.{lane_id}",
                f"no lane {lane_id!r} (lanes: {choices(sorted(by_id))})",
            )
        elif lane.direction in EXIT_DIRECTIONS:
            yield (
                f"emergency.entry_overrides.{lane_id}",
                "an exit lane is always released in an emergency",
            )
    alarm = settings.alarm
    if isinstance(alarm, UhppoteAlarmSettings):
        if alarm.controller not in controllers:
            known = choices(sorted(controllers)) if controllers else "none configured"
            yield (
                "emergency.alarm.controller",
                f"no [[uhppote]] controller with id {alarm.controller!r} (controllers: {known})",
            )
        return
    if alarm is not None and alarm.lane is not None:
        lane = by_id.get(alarm.lane)
        if lane is None:
            known = choices(sorted(by_id))
            yield ("emergency.alarm.lane", f"no lane {alarm.lane!r} (lanes: {known})")
        elif not isinstance(lane.gate, ModbusGateSettings):
            yield ("emergency.alarm.lane", f"lane {alarm.lane!r} has no Modbus gate board")
        elif alarm.input == lane.gate.passage_input:
            yield ("emergency.alarm.input", "that input is the lane's passage input")
        elif lane.gate.url.startswith("rtu:"):
            yield (
                "emergency.alarm.lane",
                "an RTU line has one master: give the url of a TCP board",
            )
    if alarm is not None and alarm.url is not None and alarm.url.startswith("rtu:"):
        for lane in lanes:
            if isinstance(lane.gate, ModbusGateSettings) and lane.gate.url == alarm.url:
                yield (
                    "emergency.alarm.url",
                    f"{alarm.url} is already lane {lane.id!r}'s gate (an RTU line has one master)",
                )
