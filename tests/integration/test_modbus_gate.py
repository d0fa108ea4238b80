"""ModbusGate against the Modbus turnstile simulator: the Gate suite over TCP and over RTU on a
pty, then what is particular to Modbus (late answers, counter sensing, the board pulse
function, pulse timing, exception answers, unit ids, the standalone simulator CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from structlog.testing import capture_logs

from suishen.drivers.base import (
    DeviceConfigError,
    DeviceProtocolError,
    DeviceState,
    DeviceTimeout,
    DeviceUnavailable,
    PassageOutcome,
    reconnect_backoff,
)
from suishen.drivers.modbus_gate import ModbusGate
from suishen.drivers.sim.turnstile import TurnstileSimulator
from suishen.protocol.turnstile import TurnstileMap
from tests.integration.suite_gate import GateSuite

COMMAND_TIMEOUT_S = 0.1


@dataclass
class ModbusHarness:
    """A ModbusGate wired to a TurnstileSimulator (GateHarness)."""

    gate: ModbusGate
    sim: TurnstileSimulator

    async def opens_received(self) -> int:
        return self.sim.opens_received

    async def set_passage(self, *, passes: bool, delay_s: float = 0.0) -> None:
        self.sim.set_passage(pass_probability=1.0 if passes else 0.0, delay_s=delay_s)

    async def stall(self, stalled: bool) -> None:
        self.sim.stall(stalled)

    async def pull_cable(self) -> None:
        await self.sim.drop()

    async def plug_cable(self) -> None:
        await self.sim.restore()


async def wait_until(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def wired(
    *,
    rtu: bool = False,
    lane: TurnstileMap | None = None,
    sim_lane: TurnstileMap | None = None,
    connected: bool = True,
    max_missed: int = 3,
) -> AsyncIterator[ModbusHarness]:
    """A started simulator and a started gate on it (CONNECTED unless told otherwise)."""
    sim = TurnstileSimulator(rtu=rtu, lane=sim_lane or lane, delay_s=0.05, pass_probability=1.0)
    await sim.start()
    gate = ModbusGate(
        device_id=f"gate-{'rtu' if rtu else 'tcp'}",
        url=sim.url,
        lane=lane,
        command_timeout_s=COMMAND_TIMEOUT_S,
        connect_timeout_s=0.5,
        poll_interval_s=0.01,
        max_missed=max_missed,
        backoff=reconnect_backoff(initial_s=0.02, cap_s=0.2),
    )
    try:
        await gate.start()
        if connected:
            await wait_until(lambda: gate.state is DeviceState.CONNECTED)
        yield ModbusHarness(gate=gate, sim=sim)
    finally:
        await gate.aclose()
        await sim.aclose()


class TestModbusTcpGate(GateSuite):
    """The Gate suite over Modbus TCP on loopback."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ModbusHarness]:
        async with wired(rtu=False) as h:
            yield h


class TestModbusRtuGate(GateSuite):
    """The Gate suite over Modbus RTU on a pty pair."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ModbusHarness]:
        async with wired(rtu=True) as h:
            yield h


# --------------------------------------------------------------------------- Modbus specifics


@pytest.mark.parametrize("rtu", [False, True], ids=["tcp", "rtu"])
async def test_late_answer_is_a_timeout_and_the_next_call_is_not_confused(rtu: bool) -> None:
    """A device answering after the deadline gives DeviceTimeout; its stale answer, arriving
    later, is not taken for the answer to the next request."""
    async with wired(rtu=rtu) as h:
        h.sim.set_response_delay(COMMAND_TIMEOUT_S * 2)
        started = time.monotonic()
        with pytest.raises(DeviceTimeout):
            await h.gate.wait_passage(timeout_s=0.0)
        assert time.monotonic() - started < COMMAND_TIMEOUT_S + 0.1
        h.sim.set_response_delay(0)
        await asyncio.sleep(COMMAND_TIMEOUT_S * 2)  # the stale answer arrives now
        h.sim.set_passage(pass_probability=0.0)
        await h.gate.open(pulse_ms=50)
        report = await h.gate.wait_passage(timeout_s=0.1)
        assert report.outcome is PassageOutcome.NOT_PASSED
        assert h.gate.state is DeviceState.CONNECTED


async def test_late_answers_racing_the_next_request_are_skipped_on_tcp() -> None:
    """Over TCP a stale answer that arrives while the next request waits is told apart by
    its transaction id: the next call gets its own answer."""
    async with wired(rtu=False) as h:
        h.sim.set_response_delay(COMMAND_TIMEOUT_S * 1.5)
        with pytest.raises(DeviceTimeout):
            await h.gate.keep_shut()
        h.sim.set_response_delay(COMMAND_TIMEOUT_S * 0.75)  # answers land while we wait
        h.sim.set_passage(pass_probability=0.0)
        report = await h.gate.wait_passage(timeout_s=0.0)
        assert report.outcome is PassageOutcome.NOT_PASSED


async def test_missed_answers_take_the_device_down_and_back() -> None:
    """max_missed timeouts in a row count as a dead device (DISCONNECTED, logged once); when
    it answers again the gate is back by itself."""
    async with wired(max_missed=2) as h:
        with capture_logs() as logs:
            h.sim.stall(True)
            for _ in range(2):
                with pytest.raises(DeviceTimeout):
                    await h.gate.open(pulse_ms=50)
            await wait_until(lambda: h.gate.state is DeviceState.DISCONNECTED)
            with pytest.raises(DeviceUnavailable):
                await h.gate.open(pulse_ms=50)
            h.sim.stall(False)
            await wait_until(lambda: h.gate.state is DeviceState.CONNECTED)
        events = [e["event"] for e in logs if e.get("device_id") == h.gate.device_id]
        assert events.count("device down") == 1
        assert events.count("device back") == 1


async def test_counter_sensing_ignores_passages_before_the_open() -> None:
    """With counter sensing a passage is a change of the counter since the open command, so a
    passage from the previous open does not count for the next."""
    lane = TurnstileMap(passage_counter=0)
    async with wired(lane=lane) as h:
        h.sim.set_passage(pass_probability=1.0, delay_s=0.0)
        await h.gate.open(pulse_ms=50)
        await wait_until(lambda: h.sim.passages == 1)
        h.sim.set_passage(pass_probability=0.0)
        await h.gate.open(pulse_ms=50)
        report = await h.gate.wait_passage(timeout_s=0.1)
        assert report.outcome is PassageOutcome.NOT_PASSED


async def test_board_pulse_function_opens_with_one_write() -> None:
    """With a pulse register the board times the pulse: the relay is on after open() and off
    after pulse_ms (rounded up to pulse units) with no further command from the driver."""
    lane = TurnstileMap(pulse_register=0, pulse_unit_ms=100)
    async with wired(lane=lane) as h:
        await h.gate.open(pulse_ms=150)
        assert h.sim.relay_on
        assert h.sim.opens_received == 1
        await asyncio.sleep(0.1)
        assert h.sim.relay_on
        await wait_until(lambda: not h.sim.relay_on, timeout_s=0.5)


async def test_driver_timed_pulse_releases_the_coil() -> None:
    """Without a pulse register the driver writes the coil ON, then OFF after pulse_ms."""
    async with wired() as h:
        started = time.monotonic()
        await h.gate.open(pulse_ms=100)
        assert h.sim.relay_on
        await wait_until(lambda: not h.sim.relay_on, timeout_s=1.0)
        assert time.monotonic() - started >= 0.09


async def test_reopen_during_a_pulse_restarts_it() -> None:
    """A second open during a pulse restarts the pulse rather than ending it early."""
    async with wired() as h:
        await h.gate.open(pulse_ms=300)
        await asyncio.sleep(0.2)
        await h.gate.open(pulse_ms=300)
        await asyncio.sleep(0.2)  # 0.4 s after the first open: the first pulse would be over
        assert h.sim.relay_on
        await wait_until(lambda: not h.sim.relay_on, timeout_s=1.0)
        assert h.sim.opens_received == 2


async def test_keep_shut_cancels_a_pulse() -> None:
    """keep_shut() drops the relay at once and a pending release does not re-trigger it."""
    async with wired() as h:
        await h.gate.open(pulse_ms=5000)
        assert h.sim.relay_on
        await h.gate.keep_shut()
        assert not h.sim.relay_on
        assert h.sim.opens_received == 1


async def test_open_times_are_recorded_at_the_device() -> None:
    """The simulator records when each open command arrived (time.monotonic), between the
    call and its return, and calls on_open with the same time."""
    seen: list[float] = []
    async with wired() as h:
        h.sim.on_open = seen.append
        before = time.monotonic()
        await h.gate.open(pulse_ms=50)
        after = time.monotonic()
        assert len(h.sim.open_times) == 1
        assert before <= h.sim.open_times[0] <= after
        assert seen == h.sim.open_times


async def test_exception_answer_is_a_protocol_error() -> None:
    """A lane map pointing past the device's inputs gets ILLEGAL_ADDRESS back: that is a
    DeviceProtocolError (the device answered), not a timeout, and the link stays up."""
    async with wired(lane=TurnstileMap(passage_input=5000), sim_lane=TurnstileMap()) as h:
        with pytest.raises(DeviceProtocolError):
            await h.gate.wait_passage(timeout_s=0.0)
        assert h.gate.state is DeviceState.CONNECTED
        await h.gate.open(pulse_ms=50)


async def test_other_unit_ids_are_not_answered() -> None:
    """A gate configured for unit 2 on a bus where only unit 1 lives never connects, and its
    calls fail fast with DeviceUnavailable."""
    async with wired(
        lane=TurnstileMap(unit=2), sim_lane=TurnstileMap(unit=1), connected=False
    ) as h:
        await wait_until(lambda: h.gate.state is DeviceState.DISCONNECTED)
        started = time.monotonic()
        with pytest.raises(DeviceUnavailable):
            await h.gate.open(pulse_ms=50)
        assert time.monotonic() - started < 0.05
        assert h.sim.opens_received == 0


async def test_gate_started_before_the_device_connects_when_it_appears() -> None:
    """A gate started while its device is off connects by itself when the device comes up."""
    sim = TurnstileSimulator(delay_s=0.0, pass_probability=1.0)
    await sim.start()
    url = sim.url
    await sim.drop()
    gate = ModbusGate(
        device_id="late", url=url, backoff=reconnect_backoff(initial_s=0.02, cap_s=0.1)
    )
    try:
        await gate.start()
        await wait_until(lambda: gate.state is DeviceState.DISCONNECTED)
        await sim.restore()
        await wait_until(lambda: gate.state is DeviceState.CONNECTED)
        await gate.open(pulse_ms=50)
        assert (await gate.wait_passage(timeout_s=1.0)).outcome is PassageOutcome.PASSED
    finally:
        await gate.aclose()
        await sim.aclose()


def test_bad_settings_are_config_errors() -> None:
    """Impossible settings fail at construction (or at the call) with DeviceConfigError."""
    with pytest.raises(DeviceConfigError):
        ModbusGate(device_id="x", url="udp://127.0.0.1:502")
    with pytest.raises(DeviceConfigError):
        ModbusGate(device_id="x", url="tcp://127.0.0.1:502", command_timeout_s=0)
    with pytest.raises(DeviceConfigError):
        ModbusGate(device_id="", url="tcp://127.0.0.1:502")


async def test_pulse_out_of_range_is_a_config_error() -> None:
    """open() with a pulse of 0 ms is refused before anything is sent."""
    async with wired() as h:
        with pytest.raises(DeviceConfigError):
            await h.gate.open(pulse_ms=0)
        assert h.sim.opens_received == 0


async def test_many_lanes_share_one_loop() -> None:
    """Eight gates on eight simulated turnstiles open and report passages concurrently."""
    async with contextlib.AsyncExitStack() as stack:
        harnesses = [await stack.enter_async_context(wired()) for _ in range(8)]

        async def one(h: ModbusHarness) -> PassageOutcome:
            await h.gate.open(pulse_ms=50)
            return (await h.gate.wait_passage(timeout_s=2.0)).outcome

        outcomes = await asyncio.gather(*(one(h) for h in harnesses))
        assert outcomes == [PassageOutcome.PASSED] * 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_standalone_simulator_cli() -> None:
    """`suishen sim turnstile --port P` serves the documented map: a gate connects to it,
    opens, and sees the passage; the simulator prints each open command."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "suishen",
        "sim",
        "turnstile",
        "--port",
        str(port),
        "--delay",
        "0.05",
        "--pass-probability",
        "1",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    gate = ModbusGate(
        device_id="cli",
        url=f"tcp://127.0.0.1:{port}",
        lane=TurnstileMap(passage_counter=0, open_counter=1),
        backoff=reconnect_backoff(initial_s=0.02, cap_s=0.1),
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        assert f"tcp://127.0.0.1:{port}" in line.decode()
        await gate.start()
        await wait_until(lambda: gate.state is DeviceState.CONNECTED)
        await gate.open(pulse_ms=50)
        assert (await gate.wait_passage(timeout_s=2.0)).outcome is PassageOutcome.PASSED
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=5)
        assert "open command #1" in line.decode()
    finally:
        await gate.aclose()
        proc.terminate()
        await proc.wait()


async def test_lane_map_the_device_refuses_is_an_error_state() -> None:
    """A device that answers the connect probe with a Modbus exception (open coil beyond its
    map) is reported ERROR, not CONNECTED, and calls fail fast with DeviceUnavailable."""
    async with wired(
        lane=TurnstileMap(open_coil=5000), sim_lane=TurnstileMap(), connected=False
    ) as h:
        await wait_until(lambda: h.gate.state is DeviceState.ERROR)
        with pytest.raises(DeviceUnavailable):
            await h.gate.open(pulse_ms=50)


async def test_counter_sensing_with_board_pulse_reports_both_outcomes() -> None:
    """Counter sensing plus the board pulse function: PASSED when the person passes,
    NOT_PASSED at the timeout when not, and the open counter register follows the opens."""
    lane = TurnstileMap(passage_counter=0, open_counter=1, pulse_register=0)
    async with wired(lane=lane) as h:
        await h.gate.open(pulse_ms=100)
        assert (await h.gate.wait_passage(timeout_s=1.0)).outcome is PassageOutcome.PASSED
        h.sim.set_passage(pass_probability=0.0)
        await h.gate.open(pulse_ms=100)
        report = await h.gate.wait_passage(timeout_s=0.1)
        assert report.outcome is PassageOutcome.NOT_PASSED
        assert h.sim.input_register_values() == {0: 1, 1: 2}
