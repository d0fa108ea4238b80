"""Emergency release at the gateway (issue 13, DESIGN §5): one ``Emergency`` per gateway
(``GatewayService.emergency``).

A fire-alarm input (a Modbus discrete input, drivers/alarm_input.py, or a UHPPOTE
controller's fire-alarm input bit, drivers/uhppote_alarm.py; either one debounced here), a
local command (POST /emergency, `suishen gateway emergency on|off`) or the hub's signed
emergency bundle declares or ends it; the transition table is protocol/emergency.py. While
active, every exit lane is released and its gate held open, entry lanes follow ``[emergency]
entries`` / ``entry_overrides``; scans are still decided and journalled (gateway/lane.py).
It ends only by an explicit command (LOCAL or HUB): the alarm input clearing is journalled
and logged once, and changes nothing.

Each transition is, in this order: persisted (an atomic 0600 write of the state file, so a
restart comes back in the same state and holds the exits before taking scans), applied to the
lanes, journalled as alert rows (kind emergency: police and staff on a declaration, staff on
the end; they go up on the sync fast lane and become hub alerts), written as the muster list
(on a declaration: ``muster-<time>.json`` in the state directory, 0600) and logged (the count,
never a name). Alarm input edges are journalled as device rows (device_id "emergency/alarm").

Design choice: an alarm input that is unreachable (board down, cable cut) does NOT declare an
emergency. It is logged once, journalled as a device row and shown on /status and /health's
device list, so staff can act; declaring on a lost link would open every exit of a site
whenever a network switch restarts, which is itself a security incident. Sites that want
"wire broken = alarm" should wire the contact normally closed through the panel's supervised
output, which the panel reports as an alarm level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog

from suishen.drivers.alarm_input import AlarmInput, ModbusAlarmInput
from suishen.drivers.base import DeviceStateChanged
from suishen.gateway.config import GatewayConfig
from suishen.gateway.config.emergency import EntryMode, UhppoteAlarmSettings
from suishen.gateway.devices import uhppote_link
from suishen.gateway.journal import Journal, JournalError
from suishen.gateway.lane import Lane
from suishen.gateway.records import AlertKind, AlertRaised, AlertRoute, PassageRecorded, ScanDecided
from suishen.gateway.state import SiteState
from suishen.protocol.device_state import DeviceState
from suishen.protocol.emergency import (
    MAX_ACTOR,
    MAX_NOTE,
    AlarmDebounce,
    EmergencyCommand,
    EmergencySource,
    EmergencyState,
    EmergencyStateError,
    clean_text,
    transition,
)

__all__ = ["ALARM_DEVICE_ID", "Emergency", "EmergencySource", "EmergencyStateError"]

log = structlog.get_logger("suishen.gateway.emergency")

ALARM_DEVICE_ID = "emergency/alarm"
ALARM_ACTOR = "alarm-input"
_NAMES_SLACK = 1000  # names remembered beyond the people inside before pruning


class Emergency:
    """The gateway's emergency state and what it does (see the module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        journal: Journal,
        state: SiteState,
        lanes: Mapping[str, Lane],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = config.emergency
        self._config = config
        self._journal = journal
        self._site = state
        self._lanes = lanes
        self._clock = clock
        directory = config.journal.path.parent
        self.state_path = self.settings.state_file or directory / "emergency.json"
        self.muster_dir = self.state_path.parent
        self.state = EmergencyState()
        self._lock = asyncio.Lock()
        self._names: dict[str, str] = {}  # person_key -> masked name (or number)
        self._debounce = AlarmDebounce(debounce_s=self.settings.alarm_debounce_ms / 1000)
        self._told_cleared = False
        self.alarm: AlarmInput | None = None
        self._alarm_state: DeviceStateChanged | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_muster_file: Path | None = None
        self._log = log.bind(site_id=config.site.id)

    # ------------------------------------------------------------------ contract

    @property
    def active(self) -> bool:
        return self.state.active

    async def declare(self, *, source: EmergencySource, actor: str, note: str = "") -> bool:
        """Put the site in emergency; True when it changed the state (idempotent). Never
        raises for its text: actor and note are cut to 64/200 characters, one line."""
        return await self._command(EmergencyCommand.DECLARE, source, actor, note)

    async def end(self, *, source: EmergencySource, actor: str, note: str = "") -> bool:
        """Back to normal; True when it changed the state. ALARM never ends it."""
        return await self._command(EmergencyCommand.END, source, actor, note)

    def muster(self) -> dict[str, Any]:
        """Who is inside now, by zone, masked: {"at", "zones": {zone: [names]}, "count"}."""
        zones: dict[str, list[str]] = {}
        count = 0
        for zone in self._config.site.zones:
            people = self._site.people_inside(zone)
            count += len(people)
            zones[zone] = sorted(self._names.get(key, f"#{key[:8]}") for key in people)
        return {"at": self._clock(), "zones": zones, "count": count}

    # ------------------------------------------------------------------ start and stop

    def load(self) -> None:
        """The persisted state (before the lanes take scans). An unreadable file is logged and
        set aside; the gateway starts normal (an operator can declare at once)."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            self._log.error(
                "emergency state not readable", path=str(self.state_path), error=exc.strerror
            )
            return
        try:
            self.state = EmergencyState.from_dict(json.loads(text))
        except (ValueError, EmergencyStateError) as exc:
            aside = self.state_path.with_name(self.state_path.name + ".bad")
            with contextlib.suppress(OSError):
                self.state_path.replace(aside)
            self._log.error("emergency state file malformed; set aside", error=str(exc)[:200])
            return
        if self.state.active:
            self._log.warning(
                "gateway starts in emergency (declared before the restart)",
                source=self.state.source.value if self.state.source else None,
                since=self.state.since,
            )

    def remember(self, records: Iterable[ScanDecided | PassageRecorded]) -> Iterable[Any]:
        """Pass records through (the journal replay at start), noting masked names."""
        for record in records:
            if isinstance(record, ScanDecided):
                self.note(record, 0)
            yield record

    def note(self, record: ScanDecided, seq: int) -> None:
        """A decided scan (the lanes' observer): remember the person's masked name."""
        del seq
        person = record.person
        if person is None:
            return
        self._names[person.person_key] = person.masked_name or person.masked_number or "?"
        if len(self._names) > self._site.count() + _NAMES_SLACK:
            inside = self._site.people_inside()
            self._names = {k: v for k, v in self._names.items() if k in inside}

    async def apply_to_lanes(self) -> None:
        """Hold each lane per the state (at start, before scans, and after a transition)."""
        by_id = {lane.id: lane for lane in self._config.lanes}
        for lane_id, lane in self._lanes.items():
            if self.state.active:
                released = self.settings.mode(by_id[lane_id]) is EntryMode.RELEASED
                await lane.hold(released=released)
            elif lane.emergency is not None:
                await lane.release()

    async def start_alarm(
        self,
        on_state: Callable[[DeviceStateChanged], None],
        *,
        uhppote_links: Mapping[str, Any] | None = None,
    ) -> None:
        """Start the configured alarm input, if any. A UHPPOTE input uses the controller's link
        from ``uhppote_links`` (the lanes' shared links, by controller id), or its own link
        when no lane uses that controller."""
        alarm = self.settings.alarm
        if alarm is None:
            return

        def state_changed(event: DeviceStateChanged) -> None:
            self._alarm_state = event
            on_state(event)

        if isinstance(alarm, UhppoteAlarmSettings):
            self.alarm = self._uhppote_alarm(alarm, uhppote_links or {}, state_changed)
        else:
            board = self.settings.alarm_board(self._config.lanes)
            assert board is not None
            self.alarm = ModbusAlarmInput(
                device_id=ALARM_DEVICE_ID,
                url=board[0],
                unit=board[1],
                input=alarm.input,
                on_level=self._on_level,
                poll_interval_s=self.settings.poll_interval_s,
                command_timeout_s=alarm.command_timeout_s,
                connect_timeout_s=alarm.connect_timeout_s,
                on_state=state_changed,
            )
        await self.alarm.start()

    def _uhppote_alarm(
        self,
        alarm: UhppoteAlarmSettings,
        links: Mapping[str, Any],
        on_state: Callable[[DeviceStateChanged], None],
    ) -> AlarmInput:
        # Imported here: the UHPPOTE driver needs the optional `devices` extra (uhppoted).
        from suishen.drivers.uhppote_alarm import UhppoteAlarmInput  # noqa: PLC0415

        link = links.get(alarm.controller)
        if link is None:
            link = uhppote_link(self._config.controller(alarm.controller))
        return UhppoteAlarmInput(
            link,
            device_id=ALARM_DEVICE_ID,
            bit=alarm.bit,
            on_level=self._on_level,
            poll_interval_s=self.settings.poll_interval_s,
            on_state=on_state,
        )

    async def aclose(self) -> None:
        if self.alarm is not None:
            await self.alarm.aclose()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        data = self.state.as_dict()
        data["alarm_input"] = self.alarm_status()
        return data

    def alarm_status(self) -> dict[str, Any] | None:
        if self.alarm is None:
            return None
        event = self._alarm_state
        return {
            "device_id": ALARM_DEVICE_ID,
            "state": (event.state if event else DeviceState.CONNECTING).value,
            "since": event.at if event else None,
            "level": self.alarm.level,
            "alarm": self._debounce.stable,
        }

    # ------------------------------------------------------------------ alarm input

    def _on_level(self, level: bool, mono: float) -> None:
        edge = self._debounce.feed(level, mono)
        if edge is None:
            return
        self._spawn(self._alarm_edge(edge))

    async def _alarm_edge(self, level: bool) -> None:
        await self._journal_device("set" if level else "cleared")
        if level:
            self._log.warning("fire alarm input set")
            await self.declare(source=EmergencySource.ALARM, actor=ALARM_ACTOR, note="alarm input")
            return
        if self.state.active and not self._told_cleared:
            self._told_cleared = True
            self._log.warning("alarm input cleared; emergency stays until an explicit command")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ transitions

    async def _command(
        self, command: EmergencyCommand, source: EmergencySource, actor: str, note: str
    ) -> bool:
        actor, note = clean_text(actor, MAX_ACTOR), clean_text(note, MAX_NOTE)
        async with self._lock:
            step = transition(
                self.state, command, source=source, actor=actor, note=note, now=self._clock()
            )
            if not step.changed:
                if command is EmergencyCommand.END and source is EmergencySource.ALARM:
                    self._log.info("the alarm input cannot end an emergency")
                return False
            try:
                self._persist(step.state)
            except OSError as exc:  # the exits are released all the same (fail-safe egress)
                self._log.error("emergency state not persisted", error=exc.strerror)
            self.state = step.state
            self._told_cleared = False  # "cleared" is logged once per emergency
            await self.apply_to_lanes()
            await self._journal_transition(command, source)
            muster = self.muster()
            if command is EmergencyCommand.DECLARE:
                self._write_muster(muster)
                self._log.warning(
                    "emergency declared: exits held open",
                    source=source.value,
                    inside=muster["count"],
                    muster_file=str(self.last_muster_file) if self.last_muster_file else None,
                )
            else:
                self._log.warning("emergency ended: gates back to normal", source=source.value)
            return True

    def _persist(self, state: EmergencyState) -> None:
        """Atomic 0600 write: a temporary file, fsync, rename, fsync the directory."""
        write_private(self.state_path, json.dumps(state.as_dict()).encode())

    def _write_muster(self, muster: dict[str, Any]) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(muster["at"]))
        path = self.muster_dir / f"muster-{stamp}.json"
        try:
            write_private(path, json.dumps(muster, ensure_ascii=False, indent=1).encode())
        except OSError as exc:
            self._log.error("muster list not written", error=exc.strerror)
            return
        self.last_muster_file = path

    async def _journal_transition(self, command: EmergencyCommand, source: EmergencySource) -> None:
        declared = command is EmergencyCommand.DECLARE
        what = "declared" if declared else "ended"
        detail = f"emergency {what} ({source.value})"
        routes = (AlertRoute.POLICE, AlertRoute.STAFF) if declared else (AlertRoute.STAFF,)
        for route in routes:
            alert = AlertRaised(kind=AlertKind.EMERGENCY, route=route, detail=detail)
            try:
                await self._journal.append_alert(alert, ts=self._clock())
            except JournalError as exc:
                self._log.error("emergency alert not journalled", route=route.value, error=str(exc))

    async def _journal_device(self, level: str) -> None:
        try:
            await self._journal.append_device(
                ts=self._clock(), lane_id=None, device_id=ALARM_DEVICE_ID, state=level
            )
        except JournalError as exc:
            self._log.error("alarm edge not journalled", level=level, error=str(exc))


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically with mode 0600 (temporary file, fsync, rename)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
