"""The fire-alarm input on a UHPPOTE controller (issue 13, item 2): a real gateway over the
simulators (pty scanners, Modbus turnstiles, the UHPPOTE controller simulator on loopback UDP),
no hub configured. The controller's fire-alarm input bit, read from its get-status reply through
the controller's UhppoteLink, holds every exit open within 1 s; a flapping bit declares once;
the bit clearing never ends the emergency; a controller that goes away declares nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from uhppoted import codec

from suishen.drivers.base import DeviceConfigError, DeviceState
from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.drivers.uhppote import MODE_CONTROLLED, MODE_NORMALLY_OPEN, UhppoteLink
from suishen.drivers.uhppote_alarm import UhppoteAlarmInput
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
from tests.integration.test_uhppote import FAST, _free_udp_port

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
        alerts = await emergency_alerts(gw, at_least=2)
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
        assert len(await emergency_alerts(gw, at_least=2)) == 2


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


async def test_the_simulator_reports_its_inputs_byte_as_uhppoted_decodes_it() -> None:
    """set_input sets and clears single bits of the get-status inputs byte, as uhppoted's
    decoder reads it (offset 50); a bit outside 0..7 is refused."""
    async with UhppoteSimulator(serial=SERIAL) as sim:
        link = UhppoteLink(serial=SERIAL, address=sim.address, listen=None, **FAST)
        await link.start()
        try:
            assert (await link.get_status()).inputs == 0
            sim.set_input(0, True)
            sim.set_input(3, True)
            assert (await link.get_status()).inputs == 0b1001
            sim.set_input(0, False)
            assert (await link.get_status()).inputs == 0b1000
        finally:
            await link.aclose()
        with pytest.raises(ValueError, match=r"0\.\.7"):
            sim.set_input(8, True)


async def test_the_alarm_input_driver_reads_its_bit_through_a_shared_link() -> None:
    """UhppoteAlarmInput on a link a door also uses: levels of its bit only, each with a
    monotonic time; its state mirrors the link's; closing it leaves the link running for the
    other user. A bit outside 0..7 or a poll interval of 0 is a DeviceConfigError."""
    async with UhppoteSimulator(serial=SERIAL) as sim:
        link = UhppoteLink(serial=SERIAL, address=sim.address, listen=None, **FAST)
        levels: list[bool] = []
        alarm = UhppoteAlarmInput(
            link,
            device_id="emergency/alarm",
            bit=1,
            on_level=lambda level, _mono: levels.append(level),
            poll_interval_s=0.02,
        )
        await link.start()  # the other user (a lane's door)
        await alarm.start()
        try:
            await wait_for(lambda: alarm.state is DeviceState.CONNECTED and len(levels) > 2)
            sim.set_input(0, True)  # not its bit
            seen = len(levels)
            await wait_for(lambda: len(levels) > seen + 2)
            assert not any(levels) and alarm.level is False
            sim.set_input(1, True)
            await wait_for(lambda: alarm.level is True)
        finally:
            await alarm.aclose()
        assert link.state is DeviceState.CONNECTED  # still started by its other user
        await link.aclose()
        for bad in ({"bit": 8}, {"bit": -1}, {"poll_interval_s": 0}):
            with pytest.raises(DeviceConfigError):
                UhppoteAlarmInput(link, device_id="a", on_level=lambda *_: None, **bad)


async def test_the_cli_simulator_sets_an_input_typed_on_its_stdin() -> None:
    """`suishen sim uhppote` reads "input 0 1" on its stdin: the next get-status reply carries
    the fire-alarm bit; "input 0 0" clears it."""
    port = _free_udp_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (a child process for the whole test)
        [sys.executable, "-m", "suishen", "sim", "uhppote", "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    link = UhppoteLink(serial=SERIAL, address=("127.0.0.1", port), listen=None, **FAST)
    inputs: list[int] = []

    async def poll() -> None:
        with contextlib.suppress(Exception):
            inputs.append((await link.get_status()).inputs)

    try:
        await link.start()
        await wait_for(lambda: link.state is DeviceState.CONNECTED, timeout_s=10.0)
        assert proc.stdin is not None
        for line, want in ((b"input 0 1\n", 1), (b"input 0 0\n", 0)):
            proc.stdin.write(line)
            proc.stdin.flush()
            async with asyncio.timeout(5.0):
                while not inputs or inputs[-1] != want:
                    await poll()
                    await asyncio.sleep(0.02)
    finally:
        await link.aclose()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
