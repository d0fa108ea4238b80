"""Emergency release end to end (issue 13, item 2): a real gateway over the simulators (pty
scanners, Modbus turnstiles, a Modbus alarm panel), no hub configured (the hub is unreachable
throughout). The fire-alarm input holds every exit open within 1 s, entries follow the config,
each transition is journalled and alerted, /status shows it, the muster list is served by the
gateway, a restart stays in emergency, and only an explicit command ends it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from suishen.demo.simsite import LaneSpec, SimSite
from suishen.drivers.sim.alarm_panel import AlarmPanelSimulator
from suishen.gateway.config import load_config
from suishen.gateway.emergency import EmergencySource
from suishen.gateway.records import Direction
from suishen.gateway.service import GatewayService
from tests.integration.gateway_fixtures import (
    RunningGateway,
    alert_detail,
    cnid,
    ric,
    running_gateway,
)

LANES = [
    LaneSpec(id="in-1", zone="lobby"),
    LaneSpec(id="in-2", zone="floor2"),
    LaneSpec(id="out-1", direction=Direction.OUT, zone="lobby"),
    LaneSpec(id="out-2", direction=Direction.OUT, zone="floor2"),
]
EXITS = ("out-1", "out-2")
ENTRIES = ("in-1", "in-2")


def emergency_toml(panel: AlarmPanelSimulator | None, *, extra: str = "") -> str:
    alarm = (
        "" if panel is None else f'alarm = {{ kind = "modbus", url = "{panel.url}", input = 3 }}\n'
    )
    return f"\n[emergency]\nalarm_debounce_ms = 50\npoll_interval_s = 0.02\n{alarm}{extra}"


def relay(gw: RunningGateway, lane_id: str) -> bool:
    turnstile = gw.site.lanes[lane_id].turnstile
    assert turnstile is not None
    return turnstile.relay_on


async def wait_for(predicate: Any, timeout_s: float = 5.0) -> float:
    """Poll until predicate() is true; the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls simulator state (no event to wait on)
            await asyncio.sleep(0.005)
    return time.monotonic() - start


async def emergency_alerts(
    gw: RunningGateway, *, at_least: int = 0, timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """The emergency alert rows journalled so far, once there are at least `at_least` of them.
    The gateway moves the relays first and journals the alerts after (egress before paperwork),
    so a test that has just seen the exits open must wait for the rows, not read a snapshot."""
    async with asyncio.timeout(timeout_s):
        while True:
            await gw.refresh()
            alerts = [
                alert_detail(row)
                for row in gw.rows
                if row.kind == "alert" and alert_detail(row)["kind"] == "emergency"
            ]
            if len(alerts) >= at_least:
                return alerts
            await asyncio.sleep(0.005)


async def flap(panel: AlarmPanelSimulator, *, reads: int) -> None:
    """Toggle input 3 after every read the gateway makes: each poll sees another level."""
    for _ in range(reads):
        seen = panel.reads
        await wait_for(lambda: panel.reads > seen)  # noqa: B023 - read at once, in the loop
        panel.set_input(3, not panel.inputs[3])


async def post(gw: RunningGateway, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with gw.http.post(gw.url("/emergency"), json=body, **kwargs) as response:
        return response.status, await response.json()


async def test_alarm_input_holds_every_exit_open_within_a_second(tmp_path: Path) -> None:
    """The alarm input set: both exits' coils held on within 1 s, entries stay shut (default
    held_shut); the declaration is journalled as emergency alerts to police and staff (no
    personal data), /status and /metrics show it. Clearing the input ends nothing (logged
    once); only POST /emergency off does, and then every gate is shut again."""
    async with (
        AlarmPanelSimulator() as panel,
        running_gateway(tmp_path, lanes=LANES, extra_toml=emergency_toml(panel)) as gw,
    ):
        await wait_for(lambda: gw.service.emergency.alarm_status()["state"] == "connected")
        panel.set_input(3, True)
        took = await wait_for(lambda: all(relay(gw, lane) for lane in EXITS))
        assert took < 1.0
        assert not any(relay(gw, lane) for lane in ENTRIES)
        status = (await gw.status())["emergency"]
        assert status["active"] is True
        assert (status["source"], status["actor"]) == ("alarm", "alarm-input")
        assert status["alarm_input"]["state"] == "connected"
        assert status["alarm_input"]["alarm"] is True
        assert "suishen_emergency_active 1" in await gw.metrics()
        alerts = await emergency_alerts(gw, at_least=2)
        assert sorted(a["route"] for a in alerts) == ["police", "staff"]
        assert all(a["detail"] == "emergency declared (alarm)" for a in alerts)
        with capture_logs() as logs:
            panel.set_input(3, False)
            await asyncio.sleep(0.3)
            panel.set_input(3, True)
            await asyncio.sleep(0.3)
            panel.set_input(3, False)
            await asyncio.sleep(0.3)
        cleared = [e for e in logs if "alarm input cleared" in e["event"]]
        assert len(cleared) == 1
        assert gw.service.emergency.active
        assert all(relay(gw, lane) for lane in EXITS)
        assert len(await emergency_alerts(gw)) == 2  # set again: still one declaration
        code, answer = await post(gw, {"state": "off", "actor": "duty-officer", "note": "ok"})
        assert (code, answer["changed"]) == (200, True)
        await wait_for(lambda: not any(relay(gw, lane) for lane in (*EXITS, *ENTRIES)))
        alerts = await emergency_alerts(gw, at_least=3)
        assert [a["route"] for a in alerts[2:]] == ["staff"]
        assert "suishen_emergency_active 0" in await gw.metrics()
        edges = [
            json.loads(r.detail or "{}")["state"]
            for r in gw.rows
            if r.kind == "device"
            and json.loads(r.detail or "{}")["device_id"] == "emergency/alarm"
            and json.loads(r.detail or "{}")["state"] in ("set", "cleared")
        ]
        assert edges == ["set", "cleared", "set", "cleared"]


async def test_a_flapping_alarm_input_declares_once(tmp_path: Path) -> None:
    """An input that flaps (another level at each of the gateway's reads, each held less than
    the debounce) declares nothing; once it holds, exactly one declaration (two alert rows:
    police, staff)."""
    async with (
        AlarmPanelSimulator() as panel,
        running_gateway(tmp_path, lanes=LANES, extra_toml=emergency_toml(panel)) as gw,
    ):
        await wait_for(lambda: gw.service.emergency.alarm_status()["state"] == "connected")
        await flap(panel, reads=20)
        panel.set_input(3, False)
        await asyncio.sleep(0.2)
        assert not gw.service.emergency.active
        await flap(panel, reads=20)
        panel.set_input(3, True)
        await wait_for(lambda: gw.service.emergency.active)
        await asyncio.sleep(0.3)
        assert len(await emergency_alerts(gw, at_least=2)) == 2


async def test_scans_during_an_emergency(tmp_path: Path) -> None:
    """Declared by command: a scan at a released exit is decided and journalled (detail
    emergency released) but sends no open command (the coil stays held); an allowed scan at
    an entry held shut is denied gate_down; with entries = released an entry is held open
    too. A second `on` changes nothing (idempotent)."""
    person = ric(cnid(dt.date(1985, 5, 5)), dob="1985-05-05")
    overrides = 'entry_overrides = { in-2 = "released" }\n'
    async with running_gateway(
        tmp_path, lanes=LANES, extra_toml=emergency_toml(None, extra=overrides)
    ) as gw:
        inside = await gw.scan("in-1", gw.code(person))
        assert inside.verdict == "allow"
        code, answer = await post(gw, {"state": "on", "actor": "guard-7", "note": "drill"})
        assert (code, answer["changed"]) == (200, True)
        assert answer["emergency"]["source"] == "local"
        await wait_for(lambda: all(relay(gw, lane) for lane in (*EXITS, "in-2")))
        assert not relay(gw, "in-1")
        code, again = await post(gw, {"state": "on", "actor": "guard-8"})
        assert (code, again["changed"]) == (200, False)
        assert again["emergency"]["actor"] == "guard-7"
        exit_sim = gw.site.lanes["out-1"].turnstile
        assert exit_sim is not None
        opens = exit_sim.opens_received
        left = await gw.scan("out-1", gw.code(person))
        assert left.verdict == "allow"
        assert json.loads(left.row.detail or "{}")["emergency"] == "released"
        assert left.passage is not None and left.passage.outcome == "passed"
        assert exit_sim.opens_received == opens
        assert relay(gw, "out-1")
        refused = await gw.scan("in-1", gw.code(person))
        assert (refused.verdict, refused.reason) == ("deny", "gate_down")
        assert json.loads(refused.row.detail or "{}")["emergency"] == "held_shut"
        assert not relay(gw, "in-1")


async def test_the_muster_list_by_zone_masked(tmp_path: Path) -> None:
    """After entries in two zones the gateway serves (GET /muster) and, on a declaration,
    writes (0600, in its state directory) who is inside by zone with masked names only; the
    declaration's log line carries the count, never a name."""
    people = [
        ric(cnid(dt.date(1985, 5, 5), "123"), name="王小明"),
        ric(cnid(dt.date(1990, 1, 2), "456"), name="李大龙"),
        ric(cnid(dt.date(1979, 3, 4), "789"), name="张伟"),
    ]
    async with running_gateway(tmp_path, lanes=LANES, extra_toml=emergency_toml(None)) as gw:
        for person, lane in zip(people, ("in-1", "in-1", "in-2"), strict=True):
            assert (await gw.scan(lane, gw.code(person))).verdict == "allow"
        async with gw.http.get(gw.url("/muster")) as response:
            assert response.status == 200
            muster = await response.json()
        assert muster["count"] == 3
        assert muster["zones"] == {"floor2": ["张*"], "lobby": ["李*龙", "王*明"]}
        with capture_logs() as logs:
            code, _ = await post(gw, {"state": "on", "actor": "guard-7"})
        assert code == 200
        declared = next(e for e in logs if e["event"].startswith("emergency declared"))
        assert declared["inside"] == 3
        assert "王" not in json.dumps(logs, ensure_ascii=False, default=str)
        path = gw.service.emergency.last_muster_file
        assert path is not None
        assert path.stat().st_mode & 0o777 == 0o600
        written = json.loads(path.read_text(encoding="utf-8"))
        assert written["zones"] == muster["zones"]
        assert "小" not in path.read_text(encoding="utf-8")


async def test_a_restart_during_an_emergency_stays_in_emergency(tmp_path: Path) -> None:
    """Declared, then the gateway stops (the turnstiles drop the held coil, as a power cycle
    would); the restarted gateway is in emergency before it is ready and holds the exits open
    again; the state file is 0600; only `off` ends it and that, too, survives a restart."""
    site = await SimSite.create(tmp_path, lanes=LANES, extra_toml=emergency_toml(None))
    try:
        async with aiohttp.ClientSession() as http:

            async def run_once(action: Any) -> GatewayService:
                service = GatewayService(load_config(site.config_path), environ=site.environ)
                task = asyncio.create_task(service.run())
                try:
                    async with asyncio.timeout(5):
                        await service.wait_ready()
                    await action(service)
                finally:
                    service.stop()
                    async with asyncio.timeout(5):
                        await task
                for lane in site.lanes.values():
                    assert lane.turnstile is not None
                    lane.turnstile.relay_on = False  # power cycle: the relays fall off
                return service

            async def send(service: GatewayService, state: str) -> None:
                url = f"http://127.0.0.1:{service.http_port}/emergency"
                async with http.post(url, json={"state": state, "actor": "guard-7"}) as r:
                    assert r.status == 200

            async def declare(service: GatewayService) -> None:
                await send(service, "on")

            async def check_held(service: GatewayService) -> None:
                assert service.emergency.active  # before any scan: set while starting
                await wait_for(
                    lambda: all(site.lanes[x].turnstile.relay_on for x in EXITS)  # type: ignore[union-attr]
                )
                assert not any(site.lanes[x].turnstile.relay_on for x in ENTRIES)  # type: ignore[union-attr]
                await send(service, "off")

            async def check_normal(service: GatewayService) -> None:
                assert not service.emergency.active
                await asyncio.sleep(0.3)
                assert not any(lane.turnstile.relay_on for lane in site.lanes.values())  # type: ignore[union-attr]

            first = await run_once(declare)
            assert first.emergency.state_path.stat().st_mode & 0o777 == 0o600
            await run_once(check_held)
            await run_once(check_normal)
    finally:
        await site.aclose()


async def test_bad_emergency_commands_are_refused(tmp_path: Path) -> None:
    """POST /emergency with a bad body is a 400 naming the field and changes nothing; a
    browser page's request (Origin header) is a 403, a non-JSON content type a 415."""
    async with running_gateway(tmp_path, lanes=LANES, extra_toml=emergency_toml(None)) as gw:
        cases: list[tuple[Any, str]] = [
            ([1, 2], "body"),
            ({"state": "maybe", "actor": "x"}, "state"),
            ({"state": "on"}, "actor"),
            ({"state": "on", "actor": "  "}, "actor"),
            ({"state": "on", "actor": "x", "note": 5}, "note"),
            ({"state": "on", "actor": "x", "note": "a\nb"}, "note"),
            ({"state": "on", "actor": "x" * 65}, "actor"),
            ({"state": "on", "actor": "x", "extra": 1}, "extra"),
        ]
        for body, field in cases:
            code, answer = await post(gw, body)
            assert (code, answer["field"]) == (400, field), body
        async with gw.http.post(
            gw.url("/emergency"), data=b"{not json", headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
        code, _ = await post(gw, {"state": "on", "actor": "x"}, headers={"Origin": "http://evil"})
        assert code == 403
        async with gw.http.post(gw.url("/emergency"), data=b"state=on") as response:
            assert response.status == 415
        assert not gw.service.emergency.active
        assert await emergency_alerts(gw) == []


async def test_an_unreachable_alarm_board_is_shown_and_declares_nothing(tmp_path: Path) -> None:
    """The alarm board goes away: /status shows the input disconnected, the change is
    journalled (device row) and logged once, and no emergency is declared; back, it is
    connected again. A declaration from the hub with an overlong, multi-line note is taken
    (cut to one line of 200 characters), never refused."""
    async with (
        AlarmPanelSimulator() as panel,
        running_gateway(tmp_path, lanes=LANES, extra_toml=emergency_toml(panel)) as gw,
    ):
        emergency = gw.service.emergency
        await wait_for(lambda: emergency.alarm_status()["state"] == "connected")
        with capture_logs() as logs:
            await panel.drop()
            await wait_for(lambda: emergency.alarm_status()["state"] != "connected")
            await asyncio.sleep(0.5)  # reconnect attempts meanwhile
        down = [
            e
            for e in logs
            if e.get("device_id") == "emergency/alarm" and e["event"] == "device down"
        ]
        assert len(down) == 1
        status = (await gw.status())["emergency"]
        assert status["alarm_input"]["state"] == "disconnected"
        assert status["active"] is False
        await gw.refresh()
        states = [
            json.loads(r.detail or "{}")["state"]
            for r in gw.rows
            if r.kind == "device" and r.lane_id is None
        ]
        assert "disconnected" in states
        await panel.restore()
        await wait_for(lambda: emergency.alarm_status()["state"] == "connected")
        assert not emergency.active
        changed = await emergency.declare(
            source=EmergencySource.HUB, actor="hub-user", note="line one\nline two " + "x" * 300
        )
        assert changed
        assert len(emergency.state.note) == 200 and "\n" not in emergency.state.note
