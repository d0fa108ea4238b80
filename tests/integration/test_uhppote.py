"""UHPPOTE controller drivers (gate + swipe source) against the UDP simulator on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest
from structlog.testing import capture_logs

from suishen.cli import build_parser
from suishen.drivers.base import (
    DeviceConfigError,
    DeviceRefused,
    DeviceState,
    DeviceStateChanged,
    DeviceTimeout,
    DeviceUnavailable,
    Gate,
    PassageOutcome,
    RawScan,
    ScanKind,
    ScanSource,
)
from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.drivers.uhppote import (
    EVENT_DOOR,
    MODE_CONTROLLED,
    MODE_NORMALLY_OPEN,
    REASON_REMOTE_OPEN,
    UhppoteGate,
    UhppoteLink,
    UhppoteSwipeSource,
)
from tests.integration.suite_gate import GateSuite
from tests.integration.suite_scan_source import ScanSourceSuite

SERIAL = 405419896
FAST = {"heartbeat_s": 0.05, "request_timeout_s": 0.2, "down_after": 2}


async def eventually(predicate: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def next_scan(source: UhppoteSwipeSource, within: float = 2.0) -> RawScan:
    async with asyncio.timeout(within):
        async for scan in source.scans():
            return scan
    raise AssertionError("scans() ended")


class UhppoteGateHarness:
    """GateHarness: a UhppoteGate on door 1 of the simulator."""

    def __init__(self, sim: UhppoteSimulator, gate: UhppoteGate) -> None:
        self.sim = sim
        self.gate = gate

    async def opens_received(self) -> int:
        return self.sim.open_count

    async def set_passage(self, *, passes: bool, delay_s: float = 0.0) -> None:
        self.sim.set_passage(passes=passes, delay_s=delay_s)

    async def stall(self, stalled: bool) -> None:
        self.sim.stall(stalled)

    async def pull_cable(self) -> None:
        await self.sim.stop()

    async def plug_cable(self) -> None:
        await self.sim.start()


class UhppoteSwipeHarness:
    """ScanSourceHarness: swipes at the simulator's readers, read by a UhppoteSwipeSource."""

    def __init__(self, sim: UhppoteSimulator, source: UhppoteSwipeSource) -> None:
        self.sim = sim
        self.source = source

    async def send_scan(self, text: str) -> None:
        self.sim.swipe(int(text), door=1)

    async def send_raw(self, data: bytes) -> None:
        del data
        raise NotImplementedError("UHPPOTE swipes are whole 64-byte datagrams, no byte stream")

    async def pull_cable(self) -> None:
        await self.sim.stop()

    async def plug_cable(self) -> None:
        await self.sim.start()


@pytest.fixture
async def sim() -> AsyncIterator[UhppoteSimulator]:
    simulator = UhppoteSimulator(serial=SERIAL, port=0, passage_delay_s=0.02, seed=1)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def link(sim: UhppoteSimulator) -> AsyncIterator[UhppoteLink]:
    lnk = UhppoteLink(serial=SERIAL, address=sim.address, **FAST)
    yield lnk
    while lnk._users:  # release whatever the test left started
        await lnk.aclose()


@pytest.fixture
async def gate(link: UhppoteLink) -> AsyncIterator[UhppoteGate]:
    g = UhppoteGate(link, door=1)
    await g.start()
    await eventually(lambda: link.state is DeviceState.CONNECTED)
    yield g
    await g.aclose()


@pytest.fixture
async def source(link: UhppoteLink) -> AsyncIterator[UhppoteSwipeSource]:
    s = UhppoteSwipeSource(link)
    await s.start()
    await eventually(lambda: link.state is DeviceState.CONNECTED)
    yield s
    await s.aclose()


@pytest.fixture
def gate_harness(sim: UhppoteSimulator, gate: UhppoteGate) -> UhppoteGateHarness:
    return UhppoteGateHarness(sim, gate)


class TestUhppoteGateConformance(GateSuite):
    """The shared Gate suite, run against UhppoteGate + the simulator."""

    @pytest.fixture
    def harness(self, sim: UhppoteSimulator, gate: UhppoteGate) -> UhppoteGateHarness:
        return UhppoteGateHarness(sim, gate)


class TestUhppoteSwipeConformance(ScanSourceSuite):
    """The shared ScanSource suite, run against UhppoteSwipeSource + the simulator."""

    @pytest.fixture
    def harness(self, sim: UhppoteSimulator, source: UhppoteSwipeSource) -> UhppoteSwipeHarness:
        return UhppoteSwipeHarness(sim, source)


# --------------------------------------------------------------------------- contracts and setup


async def test_drivers_satisfy_the_protocols(gate: UhppoteGate, source: UhppoteSwipeSource) -> None:
    """The gate is a drivers.base.Gate and the swipe source a ScanSource."""
    assert isinstance(gate, Gate)
    assert isinstance(source, ScanSource)
    assert gate.state is DeviceState.CONNECTED


async def test_connect_sets_listener_and_special_events(
    sim: UhppoteSimulator, link: UhppoteLink, gate: UhppoteGate
) -> None:
    """On connect the driver points the controller's event listener at its own loopback UDP
    port and turns on door events (record-special-events)."""
    assert link.listen_address is not None
    assert sim.listener == link.listen_address
    assert sim.special_events is True
    assert await link.get_listener() == link.listen_address
    info = await link.get_controller()
    assert info.controller == SERIAL
    assert info.version == "v8.92"


def test_bad_settings_are_config_errors() -> None:
    """Impossible settings fail at construction with DeviceConfigError."""
    with pytest.raises(DeviceConfigError):
        UhppoteLink(serial=0)
    with pytest.raises(DeviceConfigError):
        UhppoteLink(serial=SERIAL, address=("controller.local", 60000))
    with pytest.raises(DeviceConfigError):
        UhppoteLink(serial=SERIAL, request_timeout_s=0)
    link = UhppoteLink(serial=SERIAL)
    with pytest.raises(DeviceConfigError):
        UhppoteGate(link, door=5)
    with pytest.raises(DeviceConfigError):
        UhppoteSwipeSource(link, doors=[0])


# --------------------------------------------------------------------------- gate


async def test_open_reaches_the_controller(sim: UhppoteSimulator, gate: UhppoteGate) -> None:
    """open() sends open-door for the gate's door; the simulator records it with its
    monotonic receive time, and (door events on) logs a remote-open event."""
    before = time.monotonic()
    await gate.open(pulse_ms=300)
    assert sim.open_count == 1
    assert sim.opens[0].door == 1
    assert before <= sim.opens[0].received_mono <= time.monotonic()
    assert any(e.kind == EVENT_DOOR and e.reason == REASON_REMOTE_OPEN for e in sim.events)


async def test_passage_reported_from_door_sensor(sim: UhppoteSimulator, gate: UhppoteGate) -> None:
    """The door sensor's open event after open() makes wait_passage return PASSED."""
    sim.set_passage(passes=True, delay_s=0.05)
    await gate.open()
    report = await gate.wait_passage(timeout_s=2.0)
    assert report.outcome is PassageOutcome.PASSED
    assert 0.03 <= report.elapsed_s < 1.0
    assert report.device_id == gate.device_id


async def test_no_passage_is_not_passed_at_timeout(
    sim: UhppoteSimulator, gate: UhppoteGate
) -> None:
    """Nobody walks through: NOT_PASSED once the timeout elapses, not before."""
    sim.set_passage(passes=False)
    await gate.open()
    started = time.monotonic()
    report = await gate.wait_passage(timeout_s=0.3)
    assert report.outcome is PassageOutcome.NOT_PASSED
    assert time.monotonic() - started >= 0.29


async def test_stale_door_closed_event_is_not_a_passage(
    sim: UhppoteSimulator, gate: UhppoteGate
) -> None:
    """The previous person's "door closed" arriving after a new open() does not count."""
    sim.set_passage(passes=True, delay_s=0.0)
    sim.door_hold_s = 0.1
    await gate.open()
    assert (await gate.wait_passage(timeout_s=1.0)).outcome is PassageOutcome.PASSED
    sim.set_passage(passes=False)
    await gate.open()  # the first cycle's "door closed" lands during this wait
    assert (await gate.wait_passage(timeout_s=0.3)).outcome is PassageOutcome.NOT_PASSED


async def test_passage_seen_through_polling_when_events_are_lost(
    sim: UhppoteSimulator, gate: UhppoteGate
) -> None:
    """With the controller's listener gone (events lost), the heartbeat's get-status shows a
    newer event index and get-event fetches the door event: still PASSED."""
    sim.listener = None
    sim.set_passage(passes=True, delay_s=0.0)
    await gate.open()
    report = await gate.wait_passage(timeout_s=2.0)
    assert report.outcome is PassageOutcome.PASSED


async def test_keep_shut_does_not_open_and_resets_normally_open(
    sim: UhppoteSimulator, gate: UhppoteGate
) -> None:
    """keep_shut() never sends open-door; a door left normally open is set back to controlled."""
    sim.door_control[1] = (MODE_NORMALLY_OPEN, 5)
    await gate.keep_shut()
    assert sim.door_control[1] == (MODE_CONTROLLED, 5)
    assert sim.open_count == 0


async def test_keep_shut_disarms_a_waiting_passage(
    sim: UhppoteSimulator, gate: UhppoteGate
) -> None:
    """keep_shut() while wait_passage() waits ends the wait with NOT_PASSED."""
    sim.set_passage(passes=False)
    await gate.open()
    waiter = asyncio.create_task(gate.wait_passage(timeout_s=5.0))
    await asyncio.sleep(0.05)
    await gate.keep_shut()
    report = await asyncio.wait_for(waiter, 1.0)
    assert report.outcome is PassageOutcome.NOT_PASSED


async def test_open_refused_for_a_missing_door(sim: UhppoteSimulator, link: UhppoteLink) -> None:
    """A controller answering open-door with 'not opened' is DeviceRefused, not success."""
    sim.doors = 2
    gate = UhppoteGate(link, door=3)
    await gate.start()
    try:
        await eventually(lambda: link.state is DeviceState.CONNECTED)
        with pytest.raises(DeviceRefused):
            await gate.open()
    finally:
        await gate.aclose()


async def test_door_delay_is_set_at_connect(sim: UhppoteSimulator, link: UhppoteLink) -> None:
    """door_delay_s on the gate is written to the controller (controlled mode) on connect."""
    gate = UhppoteGate(link, door=2, door_delay_s=7)
    await gate.start()
    try:
        await eventually(lambda: sim.door_control[2] == (MODE_CONTROLLED, 7))
    finally:
        await gate.aclose()


# --------------------------------------------------------------------------- faults


async def test_stalled_controller_times_out_then_recovers(
    sim: UhppoteSimulator, link: UhppoteLink, gate: UhppoteGate
) -> None:
    """A controller that stops answering: open() raises a typed timeout within its deadline
    (never hangs); when it answers again the next open works."""
    sim.stall(True)
    started = time.monotonic()
    with pytest.raises((DeviceTimeout, DeviceUnavailable)):
        await gate.open()
    assert time.monotonic() - started < link.request_timeout_s + 0.15
    assert sim.open_count == 0
    sim.stall(False)
    await gate.open()
    assert sim.open_count == 1
    await eventually(lambda: link.state is DeviceState.CONNECTED)


async def test_one_missed_answer_is_a_timeout_not_an_outage(
    sim: UhppoteSimulator, link: UhppoteLink, gate: UhppoteGate
) -> None:
    """A single late answer raises DeviceTimeout; the link stays connected (down_after=2)."""
    link.heartbeat_s = 10.0  # keep the heartbeat out of the way
    await asyncio.sleep(0.1)
    sim.stall(True)
    with pytest.raises(DeviceTimeout):
        await gate.open()
    sim.stall(False)
    assert link.state is DeviceState.CONNECTED
    await gate.open()
    assert sim.open_count == 1


async def test_controller_restart_reconnects_with_state_events(
    sim: UhppoteSimulator, link: UhppoteLink, source: UhppoteSwipeSource
) -> None:
    """Power-cycling the controller: the link goes DISCONNECTED (logged once) and CONNECTED
    again by itself, and swipes flow again afterwards."""
    changes: list[DeviceStateChanged] = []
    source.status.subscribe(changes.append)
    with capture_logs() as logs:
        await sim.stop()
        await eventually(lambda: link.state is DeviceState.DISCONNECTED)
        await asyncio.sleep(0.3)  # several failed probes while down
        await sim.start()
        await eventually(lambda: link.state is DeviceState.CONNECTED)
    assert [c.state for c in changes] == [DeviceState.DISCONNECTED, DeviceState.CONNECTED]
    mine = [e for e in logs if e.get("device_id") == source.device_id]
    assert [e["event"] for e in mine if e["event"] in ("device down", "device back")] == [
        "device down",
        "device back",
    ]
    sim.swipe(7001)
    assert (await next_scan(source)).text == "7001"


async def test_replaced_controller_is_set_up_again(
    sim: UhppoteSimulator, link: UhppoteLink, source: UhppoteSwipeSource
) -> None:
    """A factory-fresh controller on the same address (no listener, no door events) gets the
    listener and door events set again after the reconnect."""
    sim.swipe(1)
    await next_scan(source)
    await sim.stop()
    fresh = UhppoteSimulator(serial=SERIAL, port=sim.port)
    await fresh.start()
    try:
        await eventually(lambda: fresh.listener == link.listen_address and fresh.special_events)
        fresh.swipe(4242)
        assert (await next_scan(source)).text == "4242"
    finally:
        await fresh.stop()


async def test_calls_against_a_dead_controller_never_hang(link: UhppoteLink) -> None:
    """Nothing listens at the controller's address: open() fails fast with a typed error."""
    dead = UhppoteLink(serial=SERIAL, address=("127.0.0.1", _free_udp_port()), **FAST)
    gate = UhppoteGate(dead)
    await gate.start()
    try:
        await eventually(lambda: dead.state is DeviceState.DISCONNECTED)
        started = time.monotonic()
        with pytest.raises((DeviceUnavailable, DeviceTimeout)):
            await gate.open()
        assert time.monotonic() - started < dead.request_timeout_s + 0.15
        report = await gate.wait_passage(timeout_s=0.05)
        assert report.outcome is PassageOutcome.NOT_PASSED
    finally:
        await gate.aclose()


# --------------------------------------------------------------------------- swipes


async def test_swipes_arrive_as_card_scans(
    sim: UhppoteSimulator, source: UhppoteSwipeSource
) -> None:
    """Each swipe event becomes a RawScan(kind=CARD) with the card number in decimal."""
    sim.swipe(10058400, door=1)
    sim.swipe(3922570474, door=2, granted=False)
    first = await next_scan(source)
    second = await next_scan(source)
    assert (first.kind, first.text, first.device_id) == (
        ScanKind.CARD,
        "10058400",
        source.device_id,
    )
    assert second.text == "3922570474"
    assert first.received_mono <= second.received_mono <= time.monotonic()
    assert abs(first.received_at - time.time()) < 5


async def test_swipes_filtered_by_door(sim: UhppoteSimulator, link: UhppoteLink) -> None:
    """A source for door 2 only sees door 2's reader; door events are never scans."""
    door2 = UhppoteSwipeSource(link, doors=[2])
    await door2.start()
    try:
        await eventually(lambda: link.state is DeviceState.CONNECTED)
        gate = UhppoteGate(link, door=2)
        await gate.start()
        await gate.open()  # door events on door 2
        sim.swipe(111, door=1)
        sim.swipe(222, door=2)
        assert (await next_scan(door2)).text == "222"
        await gate.aclose()
    finally:
        await door2.aclose()


async def test_poll_only_mode_reads_swipes_via_get_event(sim: UhppoteSimulator) -> None:
    """listen=None: no listener socket; swipes come from get-status + get-event polling."""
    link = UhppoteLink(serial=SERIAL, address=sim.address, listen=None, **FAST)
    source = UhppoteSwipeSource(link)
    await source.start()
    try:
        await eventually(lambda: link.state is DeviceState.CONNECTED)
        assert sim.listener is None
        sim.swipe(5150)
        scan = await next_scan(source)
        assert scan.text == "5150"
    finally:
        await source.aclose()


async def test_history_is_not_replayed_at_connect(sim: UhppoteSimulator) -> None:
    """Swipes recorded before the driver connected are not reported as new scans."""
    sim.swipe(1)
    sim.swipe(2)
    link = UhppoteLink(serial=SERIAL, address=sim.address, **FAST)
    source = UhppoteSwipeSource(link)
    await source.start()
    try:
        await eventually(lambda: link.state is DeviceState.CONNECTED)
        await asyncio.sleep(0.15)  # a few heartbeats
        sim.swipe(3)
        assert (await next_scan(source)).text == "3"
    finally:
        await source.aclose()


async def test_scans_end_at_aclose(sim: UhppoteSimulator, link: UhppoteLink) -> None:
    """scans() finishes when the source is closed."""
    source = UhppoteSwipeSource(link)
    await source.start()
    collected: list[RawScan] = []

    async def consume() -> None:
        collected.extend([s async for s in source.scans()])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await source.aclose()
    await asyncio.wait_for(task, 1.0)
    assert collected == []


# --------------------------------------------------------------------------- wire robustness


async def test_malformed_event_packets_are_ignored_with_a_log(
    sim: UhppoteSimulator, link: UhppoteLink, source: UhppoteSwipeSource
) -> None:
    """Short, long, wrong-SOM, foreign-serial and garbage datagrams at the listener are
    logged and ignored; the next real swipe still arrives."""
    good = bytearray(64)
    good[0], good[1] = 0x17, 0x20
    foreign = bytearray(good)
    foreign[4:8] = (12345).to_bytes(4, "little")
    wrong_som = bytearray(good)
    wrong_som[0] = 0x42
    ours = bytearray(good)
    ours[4:8] = SERIAL.to_bytes(4, "little")
    bad_function = bytearray(ours)
    bad_function[1] = 0x99
    with capture_logs() as logs:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            for junk in (b"", b"\x17", bytes(63), bytes(65), wrong_som, foreign, bad_function):
                peer.sendto(bytes(junk), link.listen_address)
        sim.swipe(999)
        scan = await next_scan(source)
    assert scan.text == "999"
    ignored = [e for e in logs if e["event"] == "uhppote packet ignored"]
    assert len(ignored) == 7
    assert link.malformed_packets == 7
    assert link.state is DeviceState.CONNECTED


async def test_junk_on_the_reply_path_is_skipped(
    sim: UhppoteSimulator, link: UhppoteLink, gate: UhppoteGate
) -> None:
    """Garbage datagrams before the real reply do not break the request: open still works."""
    wrong_serial = bytearray(64)
    wrong_serial[0], wrong_serial[1] = 0x17, 0x40
    sim.queue_raw_replies(b"\x00" * 10, bytes(64), bytes(wrong_serial))
    with capture_logs() as logs:
        await gate.open()
    assert sim.open_count == 1
    assert sum(e["event"] == "uhppote packet ignored" for e in logs) == 3


async def test_datagram_flood_does_not_flood_the_log(
    sim: UhppoteSimulator, link: UhppoteLink, source: UhppoteSwipeSource
) -> None:
    """Hundreds of bad datagrams: all counted, only the first few logged."""
    with capture_logs() as logs:
        for batch in range(1, 16):
            for _ in range(20):
                sim.send_raw(b"junk")
            # let the loop read: a full socket buffer drops datagrams (UDP)
            await eventually(lambda n=batch: link.malformed_packets >= 20 * n)
        sim.swipe(1)
        await next_scan(source)
    assert link.malformed_packets == 300
    assert sum(e["event"] == "uhppote packet ignored" for e in logs) == 20


# --------------------------------------------------------------------------- clock


async def test_set_time_sets_the_controller_clock(sim: UhppoteSimulator, link: UhppoteLink) -> None:
    """set_time() writes the controller's clock (naive local time) and returns what it reads."""
    await link.start()
    await eventually(lambda: link.state is DeviceState.CONNECTED)
    target = dt.datetime(2031, 5, 6, 7, 8, 9)  # noqa: DTZ001 (controller clocks are naive)
    assert await link.set_time(target) == target
    assert abs((sim.now() - target).total_seconds()) <= 2
    assert abs((await link.get_time() - target).total_seconds()) <= 2
    aware = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert await link.set_time(aware) == aware.astimezone().replace(tzinfo=None)
    now = await link.set_time()
    local_now = dt.datetime.now(dt.UTC).astimezone().replace(tzinfo=None)
    assert abs((now - local_now).total_seconds()) <= 2


async def test_clock_is_set_on_connect(sim: UhppoteSimulator) -> None:
    """With set_clock (default) a connecting link sets a wrong controller clock right."""
    sim._clock_offset = dt.timedelta(days=-400)
    link = UhppoteLink(serial=SERIAL, address=sim.address, **FAST)
    await link.start()
    try:
        await eventually(lambda: link.state is DeviceState.CONNECTED)
        local_now = dt.datetime.now(dt.UTC).astimezone().replace(tzinfo=None)
        assert abs((sim.now() - local_now).total_seconds()) <= 2
    finally:
        await link.aclose()


# --------------------------------------------------------------------------- CLI


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_registers_the_simulator() -> None:
    """`suishen sim uhppote --serial --port --listener` parses into a runnable handler."""
    args = build_parser().parse_args(
        [
            "sim",
            "uhppote",
            "--serial",
            "423187757",
            "--port",
            "60123",
            "--listener",
            "127.0.0.1:60001",
        ]
    )
    assert args.serial == 423187757
    assert args.port == 60123
    assert args.listener == ("127.0.0.1", 60001)
    assert callable(args.handler)


async def test_cli_simulator_serves_the_driver() -> None:
    """The standalone simulator process answers the driver, and a card number typed on its
    stdin arrives as a swipe."""
    port = _free_udp_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (a child process for the whole test)
        [sys.executable, "-m", "suishen", "sim", "uhppote", "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    link = UhppoteLink(serial=405419896, address=("127.0.0.1", port), **FAST)
    source = UhppoteSwipeSource(link)
    try:
        await source.start()
        await eventually(lambda: link.state is DeviceState.CONNECTED, within=10.0)
        assert proc.stdin is not None
        proc.stdin.write(b"8675309 1\n")
        proc.stdin.flush()
        assert (await next_scan(source, within=5.0)).text == "8675309"
    finally:
        await source.aclose()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
