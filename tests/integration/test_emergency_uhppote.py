"""The fire-alarm input on a UHPPOTE controller (issue 13, item 2): a real gateway over the
simulators (pty scanners, Modbus turnstiles, the UHPPOTE controller simulator on loopback UDP),
no hub configured. The controller's fire-alarm input bit, read from its get-status reply through
the controller's UhppoteLink, holds every exit open within 1 s; a flapping bit declares once;
the bit clearing never ends the emergency; a controller that goes away declares nothing."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from structlog.testing import capture_logs
from uhppoted import codec

from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.drivers.uhppote import MODE_CONTROLLED, MODE_NORMALLY_OPEN
from tests.integration.gateway_fixtures import RunningGateway, running_gateway
from tests.integration.test_emergency import (
    ENTRIES,
    EXITS,
    LANES,
    emergency_alerts,
    post,
    relay,
    wait_for,
)

SERIAL = 405419896


def uhppote_toml(sim: UhppoteSimulator, *, bit: int | None = None) -> str:
    """[emergency] with the alarm on controller "fire" (the simulator), and that controller."""
    with_bit = "" if bit is None else f", bit = {bit}"
    return (
        "\n[emergency]\nalarm_debounce_ms = 50\npoll_interval_s = 0.02\n"
        f'alarm = {{ kind = "uhppote", controller = "fire"{with_bit} }}\n'
        f'\n[[uhppote]]\nid = "fire"\nserial = {SERIAL}\nport = {sim.port}\n'
        "request_timeout_s = 0.2\nheartbeat_s = 0.2\n"
    )


def status_reads(sim: UhppoteSimulator) -> int:
    return sim.requests.get(codec.GET_STATUS, 0)


async def connected(gw: RunningGateway) -> None:
    status = gw.service.emergency.alarm_status
    await wait_for(lambda: (status() or {}).get("state") == "connected")


def edges(gw: RunningGateway) -> list[str]:
    """The alarm input's edges as journalled (device rows of emergency/alarm)."""
    details = [json.loads(r.detail or "{}") for r in gw.rows if r.kind == "device"]
    return [
        d["state"]
        for d in details
        if d["device_id"] == "emergency/alarm" and d["state"] in ("set", "cleared")
    ]


async def test_the_controller_fire_input_holds_every_exit_open_within_a_second(
    tmp_path: Path,
) -> None:
    """Bit 0 of the controller's inputs byte set: both exits' coils held on within 1 s,
    entries stay shut; declared by the alarm (police and staff alerts), /status shows the
    input. The bit clearing ends nothing (logged once, even when it flaps on and off again);
    only an explicit off does. Each edge is a device row of emergency/alarm."""
    async with (
        UhppoteSimulator(serial=SERIAL) as sim,
        running_gateway(tmp_path, lanes=LANES, extra_toml=uhppote_toml(sim)) as gw,
    ):
        await connected(gw)
        sim.set_input(1, True)  # "lock forced": not the fire alarm
        await asyncio.sleep(0.3)
        assert not gw.service.emergency.active
        sim.set_input(0, True)
        took = await wait_for(lambda: all(relay(gw, lane) for lane in EXITS))
        assert took < 1.0
        assert not any(relay(gw, lane) for lane in ENTRIES)
        status = (await gw.status())["emergency"]
        assert (status["active"], status["source"], status["actor"]) == (
            True,
            "alarm",
            "alarm-input",
        )
        assert status["alarm_input"]["state"] == "connected"
        assert (status["alarm_input"]["level"], status["alarm_input"]["alarm"]) == (True, True)
        alerts = await emergency_alerts(gw)
        assert sorted(a["route"] for a in alerts) == ["police", "staff"]
        with capture_logs() as logs:
            for level in (False, True, False):
                sim.set_input(0, level)
                await asyncio.sleep(0.3)
        assert len([e for e in logs if "alarm input cleared" in e["event"]]) == 1
        assert gw.service.emergency.active
        assert all(relay(gw, lane) for lane in EXITS)
        assert len(await emergency_alerts(gw)) == 2  # set again: still one declaration
        code, answer = await post(gw, {"state": "off", "actor": "duty-officer", "note": "ok"})
        assert (code, answer["changed"]) == (200, True)
        await wait_for(lambda: not any(relay(gw, lane) for lane in (*EXITS, *ENTRIES)))
        await gw.refresh()
        assert edges(gw) == ["set", "cleared", "set", "cleared"]


async def test_a_flapping_controller_input_declares_once(tmp_path: Path) -> None:
    """The bit takes another level at each get-status the gateway sends (each level held less
    than the debounce): nothing is declared; once it holds, exactly one declaration (two alert
    rows: police, staff)."""
    async with (
        UhppoteSimulator(serial=SERIAL) as sim,
        running_gateway(tmp_path, lanes=LANES, extra_toml=uhppote_toml(sim)) as gw,
    ):
        await connected(gw)

        async def flap(reads: int) -> None:
            for _ in range(reads):
                seen = status_reads(sim)
                await wait_for(lambda: status_reads(sim) > seen)  # noqa: B023 - read at once
                sim.set_input(0, not sim.inputs & 1)

        await flap(20)
        sim.set_input(0, False)
        await asyncio.sleep(0.2)
        assert not gw.service.emergency.active
        await flap(20)
        sim.set_input(0, True)
        await wait_for(lambda: gw.service.emergency.active)
        await asyncio.sleep(0.3)
        assert len(await emergency_alerts(gw)) == 2


async def test_the_alarm_shares_the_link_of_a_lane_on_the_same_controller(
    tmp_path: Path,
) -> None:
    """Exit out-2 is door 1 of the controller whose input bit 1 is configured as the alarm:
    the alarm reads through that lane's UhppoteLink (one link per controller), and the bit set
    holds both exits open within 1 s (the door normally open, out-1's coil on)."""

    def door_gate(text: str) -> str:
        return re.sub(
            r'(id = "out-2"\n(?:.*\n)*?)gate = \{[^\n]*\}',
            r'\1gate = { kind = "uhppote", controller = "fire", door = 1 }',
            text,
            count=1,
        )

    async with (
        UhppoteSimulator(serial=SERIAL) as sim,
        running_gateway(
            tmp_path, lanes=LANES, extra_toml=uhppote_toml(sim, bit=1), edit_config=door_gate
        ) as gw,
    ):
        await connected(gw)
        devices = gw.service.devices
        assert devices is not None
        alarm = gw.service.emergency.alarm
        assert getattr(alarm, "link", None) is devices.uhppote_links["fire"]
        assert sim.door_control[1][0] == MODE_CONTROLLED
        sim.set_input(1, True)
        took = await wait_for(
            lambda: relay(gw, "out-1") and sim.door_control[1][0] == MODE_NORMALLY_OPEN
        )
        assert took < 1.0
        assert gw.service.emergency.active


async def test_a_controller_that_goes_away_declares_nothing(tmp_path: Path) -> None:
    """The controller powered off: the alarm input shows disconnected on /status, logged once
    as down under emergency/alarm and journalled; no emergency is declared. Back on the same
    port, the input is connected again and its bit declares as before."""
    async with (
        UhppoteSimulator(serial=SERIAL) as sim,
        running_gateway(tmp_path, lanes=LANES, extra_toml=uhppote_toml(sim)) as gw,
    ):
        emergency = gw.service.emergency
        await connected(gw)
        with capture_logs() as logs:
            await sim.stop()
            await wait_for(lambda: (emergency.alarm_status() or {})["state"] != "connected")
            await asyncio.sleep(0.5)  # polls and heartbeats fail meanwhile
        down = [
            e
            for e in logs
            if e.get("device_id") == "emergency/alarm" and e["event"] == "device down"
        ]
        assert len(down) == 1
        status = (await gw.status())["emergency"]
        assert status["alarm_input"]["state"] == "disconnected"
        assert status["alarm_input"]["level"] is None
        assert status["active"] is False
        await gw.refresh()
        states = [
            json.loads(r.detail or "{}")
            for r in gw.rows
            if r.kind == "device" and r.lane_id is None
        ]
        assert any(
            s.get("device_id") == "emergency/alarm" and s["state"] == "disconnected" for s in states
        )
        await sim.start()
        await connected(gw)
        assert not emergency.active
        sim.set_input(0, True)
        await wait_for(lambda: emergency.active)
