"""The OSDP reader driver (libosdp CP) against the OSDP reader simulator (libosdp PD).

Both ends are real libosdp over a real byte link: loopback TCP (a serial-to-TCP converter
in front of the reader) or a pty pair. libosdp runs a thread on each side; every wait here
is bounded, and each test tears both down (threads joined).
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import osdp_sys
import pytest
from structlog.testing import capture_logs

from suishen.drivers.base import (
    Colour,
    DeviceRefused,
    DeviceState,
    DriverError,
    PassageOutcome,
    ScanKind,
    Signal,
    reconnect_backoff,
)
from suishen.drivers.osdp import (
    CARD_DATA_MAX,
    OsdpBus,
    OsdpFieldError,
    OsdpReader,
    OsdpReaderConfig,
    card_read_event,
    signal_commands,
)
from suishen.drivers.sim.osdp_reader import OsdpReaderSim
from suishen.protocol import osdp as codec
from suishen.protocol.wiegand import WiegandFormat
from tests.integration.suite_gate import GateSuite
from tests.integration.suite_scan_source import ScanCollector, ScanSourceSuite, wait_until

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OTHER_KEY = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
BUS_OPTIONS = {
    "backoff": reconnect_backoff(initial_s=0.05, cap_s=0.3),
    "dead_after_s": 0.6,
    "command_timeout_s": 0.5,
}
OUTPUT_ON_CODES = (2, 4, 5)


async def connected(reader: OsdpReader, timeout_s: float = 5.0) -> None:
    await wait_until(lambda: reader.state is DeviceState.CONNECTED, timeout_s)


def make_reader(sim: OsdpReaderSim, *, scbk: bytes | None = KEY, **config: object) -> OsdpReader:
    bus = OsdpBus(
        sim.port, [OsdpReaderConfig(address=sim.address, scbk=scbk, **config)], **BUS_OPTIONS
    )
    reader = bus.reader(sim.address)
    reader._own_bus = True
    return reader


@pytest.fixture
async def sim() -> AsyncIterator[OsdpReaderSim]:
    simulator = OsdpReaderSim.on_tcp(scbk=KEY, passage_delay_s=0.05)
    simulator.start()
    yield simulator
    await asyncio.to_thread(simulator.close)


@pytest.fixture
async def reader(sim: OsdpReaderSim) -> AsyncIterator[OsdpReader]:
    driver = make_reader(sim)
    await driver.start()
    await connected(driver)
    yield driver
    await driver.aclose()


@pytest.fixture
async def scans(reader: OsdpReader) -> AsyncIterator[ScanCollector]:
    collector = ScanCollector(reader)
    collector.start()
    yield collector
    await collector.aclose()


# --------------------------------------------------------------------------- libosdp numbers

LIBOSDP_NUMBERS: list[tuple[enum.IntEnum, str]] = [
    (codec.Command.OUTPUT, "CMD_OUTPUT"),
    (codec.Command.LED, "CMD_LED"),
    (codec.Command.BUZZER, "CMD_BUZZER"),
    (codec.Event.CARDREAD, "EVENT_CARDREAD"),
    (codec.Event.STATUS, "EVENT_STATUS"),
    (codec.Event.NOTIFICATION, "EVENT_NOTIFICATION"),
    (codec.Notification.SC_STATUS, "EVENT_NOTIFICATION_SC_STATUS"),
    (codec.Notification.PD_STATUS, "EVENT_NOTIFICATION_PD_STATUS"),
    (codec.StatusReport.INPUT, "STATUS_REPORT_INPUT"),
    (codec.CardFormat.RAW_UNSPECIFIED, "CARD_FMT_RAW_UNSPECIFIED"),
    (codec.CardFormat.RAW_WIEGAND, "CARD_FMT_RAW_WIEGAND"),
    (codec.LedColour.NONE, "LED_COLOR_NONE"),
    (codec.LedColour.RED, "LED_COLOR_RED"),
    (codec.LedColour.GREEN, "LED_COLOR_GREEN"),
    (codec.LedColour.AMBER, "LED_COLOR_AMBER"),
    (codec.Completion.OK, "COMPLETION_OK"),
]


@pytest.mark.parametrize(("ours", "name"), LIBOSDP_NUMBERS, ids=[n for _, n in LIBOSDP_NUMBERS])
def test_protocol_numbers_match_libosdp(ours: enum.IntEnum, name: str) -> None:
    """Each libosdp number protocol.osdp defines (it cannot import libosdp) equals the one the
    installed osdp_sys exports under that name."""
    assert ours == getattr(osdp_sys, name)


def test_every_libosdp_number_is_checked() -> None:
    """The list above covers every member of protocol.osdp's libosdp-number enums, so a
    number added there without a check here fails."""
    enums = (
        codec.Command,
        codec.Event,
        codec.Notification,
        codec.StatusReport,
        codec.CardFormat,
        codec.LedColour,
        codec.Completion,
    )
    # IntEnum members of different enums compare (and hash) equal as ints: key by class too
    members = {(type(member), member.name) for enum_class in enums for member in enum_class}
    checked = [(type(ours), ours.name) for ours, _ in LIBOSDP_NUMBERS]
    assert sorted(map(repr, checked)) == sorted(map(repr, members))


def test_codec_field_errors_become_driver_errors_naming_the_device() -> None:
    """At the driver boundary protocol.osdp's OsdpFieldError becomes the driver's
    OsdpFieldError (a DriverError and ValueError naming the device), chained from it."""
    with pytest.raises(OsdpFieldError) as refused:
        signal_commands(Signal(colour=Colour.RED, hold_ms=30_000), device_id="osdp-7")
    err = refused.value
    assert isinstance(err, DriverError)
    assert isinstance(err, ValueError)
    assert (err.device_id, err.field, err.value, err.limit) == (
        "osdp-7",
        "hold_ms",
        30_000,
        "100..25500 ms",
    )
    assert isinstance(err.__cause__, codec.OsdpFieldError)
    with pytest.raises(OsdpFieldError) as refused:
        card_read_event(b"", device_id="osdp-8")
    assert (refused.value.device_id, refused.value.field) == ("osdp-8", "card_data")
    assert isinstance(refused.value.__cause__, codec.OsdpFieldError)


# --------------------------------------------------------------------------- card reads


async def test_wiegand_26_and_34_reads_arrive_as_card_scans(
    sim: OsdpReaderSim, reader: OsdpReader, scans: ScanCollector
) -> None:
    """A W26 and a W34 card read arrive as RawScan(kind=CARD) with the decimal card number."""
    before = time.monotonic()
    sim.present_card(12345678, WiegandFormat.W26)
    scan = await scans.next()
    assert (scan.kind, scan.text, scan.symbology) == (ScanKind.CARD, "12345678", "wiegand26")
    assert scan.device_id == reader.device_id == "osdp-101"
    assert before <= scan.received_mono <= time.monotonic()
    sim.present_card(4_000_000_000, WiegandFormat.W34)
    scan = await scans.next()
    assert (scan.text, scan.symbology) == ("4000000000", "wiegand34")


async def test_bad_parity_is_dropped_and_logged_without_the_number(
    sim: OsdpReaderSim, reader: OsdpReader, scans: ScanCollector
) -> None:
    """A W26 read with a wrong parity bit yields no scan (one warning, no card number in it);
    the next good read arrives."""
    good_then_bad = bytes([0b1000_0000, 0x80, 0x00, 0x00])  # E=1 but no data bits set
    with capture_logs() as logs:
        sim.present_wiegand_bits(good_then_bad, 26)
        sim.present_card(777)
        assert (await scans.next()).text == "777"
    warnings = [e for e in logs if e["event"] == "wiegand read with bad parity dropped"]
    assert len(warnings) == 1
    assert "777" not in repr(warnings)


async def test_raw_64_bytes_accepted_65_refused_before_libosdp(
    sim: OsdpReaderSim, reader: OsdpReader, scans: ScanCollector
) -> None:
    """64 bytes of raw card data (an IC card) arrive as upper-case hex; 65 bytes raise
    OsdpFieldError before libosdp sees them, and the link still works afterwards."""
    data = bytes(range(CARD_DATA_MAX))
    sim.present_raw(data)
    scan = await scans.next()
    assert (scan.kind, scan.text, scan.symbology) == (ScanKind.CARD, data.hex().upper(), "raw")
    with pytest.raises(OsdpFieldError) as refused:
        sim.present_raw(bytes(CARD_DATA_MAX + 1))
    assert refused.value.field == "card_data"
    with pytest.raises(OsdpFieldError):
        sim.present_raw(b"")
    sim.present_raw(b"\x04\x11\x22\x33")
    assert (await scans.next()).text == "04112233"
    assert reader.state is DeviceState.CONNECTED


# --------------------------------------------------------------------------- indicator


async def test_led_and_buzzer_reach_the_reader(sim: OsdpReaderSim, reader: OsdpReader) -> None:
    """A deny signal is a red temporary LED for hold_ms and three beeps at the reader."""
    await reader.show(Signal.deny())
    await sim.wait_count("led", 1)
    await sim.wait_count("buzzer", 1)
    led, buzzer = sim.last("led"), sim.last("buzzer")
    assert led is not None
    assert buzzer is not None
    assert led.fields["temporary"] is True
    assert led.fields["on_color"] == 1  # OSDP red
    assert led.fields["timer_count"] == 15  # 1500 ms in 100 ms units
    assert (buzzer.fields["on_count"], buzzer.fields["off_count"]) == (1, 1)
    assert buzzer.fields["rep_count"] == 3
    await reader.show(Signal(colour=Colour.GREEN))
    await sim.wait_count("led", 2)
    assert sim.count("buzzer") == 1  # no beeps, no buzzer command


async def test_out_of_range_signal_is_refused_before_anything_is_sent(
    sim: OsdpReaderSim, reader: OsdpReader
) -> None:
    """An LED hold or a beep that does not fit its OSDP field raises OsdpFieldError and
    sends nothing."""
    with pytest.raises(OsdpFieldError) as refused:
        await reader.show(Signal(colour=Colour.RED, hold_ms=30_000))
    assert refused.value.field == "hold_ms"
    with pytest.raises(OsdpFieldError):
        await reader.show(Signal(colour=Colour.RED, beeps=(100_000,)))
    with pytest.raises(OsdpFieldError):
        await reader.show(Signal(colour=Colour.RED, beeps=(100, 100) * 300))
    await asyncio.sleep(0.1)
    assert sim.count("led") == sim.count("buzzer") == 0


# --------------------------------------------------------------------------- gate


async def test_output_pulse_reaches_the_reader_and_passage_is_reported(
    sim: OsdpReaderSim, reader: OsdpReader
) -> None:
    """open(500 ms) is one timed output pulse (5 x 100 ms) on output 0, received between the
    call and its return; the simulated passage input then gives PASSED."""
    sent = time.monotonic()
    await reader.open(pulse_ms=500)
    returned = time.monotonic()
    output = sim.last("output")
    assert output is not None
    assert output.fields == {"command": 1, "output_no": 0, "control_code": 5, "timer_count": 5}
    assert sent <= output.received_mono <= returned
    report = await reader.wait_passage(timeout_s=2.0)
    assert report.outcome is PassageOutcome.PASSED
    with pytest.raises(OsdpFieldError):
        await reader.open(pulse_ms=30_000)


async def test_without_a_passage_input_wait_passage_is_not_passed(sim: OsdpReaderSim) -> None:
    """A reader configured without a passage input cannot report one: NOT_PASSED at the
    timeout, even though the simulator reported its input."""
    driver = make_reader(sim, passage_input=None)
    await driver.start()
    try:
        await connected(driver)
        await driver.open(pulse_ms=100)
        report = await driver.wait_passage(timeout_s=0.3)
        assert report.outcome is PassageOutcome.NOT_PASSED
        assert report.elapsed_s >= 0.3
    finally:
        await driver.aclose()


# --------------------------------------------------------------------------- secure channel


async def test_matching_key_gives_a_secure_channel(sim: OsdpReaderSim, reader: OsdpReader) -> None:
    """With the same SCBK on both sides the session is secure (the PD enforces it)."""
    assert reader.state is DeviceState.CONNECTED
    await wait_until(lambda: sim.secure, 2.0)


async def test_key_mismatch_refuses_the_reader_and_logs_once() -> None:
    """A reader with another SCBK is refused: state ERROR with a clear detail, commands raise
    DeviceRefused, show() stays best effort, and "device down" is logged exactly once."""
    simulator = OsdpReaderSim.on_tcp(scbk=OTHER_KEY)
    simulator.start()
    driver = make_reader(simulator)
    try:
        with capture_logs() as logs:
            await driver.start()
            await wait_until(lambda: driver.state is DeviceState.ERROR, 5.0)
            await asyncio.sleep(0.5)  # retries while refused must not log again
        assert "SCBK does not match" in driver.status.last_error
        with pytest.raises(DeviceRefused):
            await driver.open(pulse_ms=100)
        await driver.show(Signal.allow())  # best effort: no exception
        mine = [e for e in logs if e.get("device_id") == driver.device_id]
        downs = [e for e in mine if e["event"] == "device down"]
        assert len(downs) == 1, mine
        assert downs[0]["state"] == "error"
        assert simulator.count("output") == 0
    finally:
        await driver.aclose()
        await asyncio.to_thread(simulator.close)


# --------------------------------------------------------------------------- recovery


async def test_reader_restart_reconnects(
    sim: OsdpReaderSim, reader: OsdpReader, scans: ScanCollector
) -> None:
    """A reader power cycle (fresh PD state): the CP notices, reconnects by itself (instead of
    libosdp's 300 s pause) and card reads flow again."""
    await asyncio.to_thread(sim.stop)
    await wait_until(lambda: reader.state is DeviceState.DISCONNECTED, 3.0)
    await asyncio.to_thread(sim.start)
    await connected(reader, 3.0)
    sim.present_card(4242)
    assert (await scans.next()).text == "4242"


async def test_pty_link_card_read_and_cable_pull(tmp_path: Path) -> None:
    """Over a pty (behind a stable symlink): a card read arrives; pulling the cable (the pty
    closes) gives DISCONNECTED, and plugging a new pty behind the link reconnects."""
    simulator = OsdpReaderSim.on_pty(scbk=KEY, link=tmp_path / "osdp0")
    simulator.start()
    driver = make_reader(simulator)
    collector = ScanCollector(driver)
    try:
        await driver.start()
        await connected(driver)
        collector.start()
        simulator.present_card(99)
        assert (await collector.next()).text == "99"
        simulator.unplug()
        await wait_until(lambda: driver.state is DeviceState.DISCONNECTED, 3.0)
        simulator.plug()
        await connected(driver, 3.0)
        simulator.present_card(100)
        assert (await collector.next()).text == "100"
    finally:
        await collector.aclose()
        await driver.aclose()
        await asyncio.to_thread(simulator.close)


async def test_cli_simulator_serves_a_driver() -> None:
    """`suishen sim osdp --tcp-listen 0 --scbk HEX` prints its port, a driver connects with
    the same key, and a stdin line `w26 NUMBER` arrives as a card scan."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "suishen",
        "sim",
        "osdp",
        "--tcp-listen",
        "0",
        "--scbk",
        KEY.hex(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    driver: OsdpReader | None = None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        port = first.strip().rsplit(" ", 1)[-1]
        assert port.startswith("socket://127.0.0.1:")
        driver = OsdpReader.on_own_bus(port, scbk=KEY, **BUS_OPTIONS)
        await driver.start()
        await connected(driver)
        collector = ScanCollector(driver)
        collector.start()
        proc.stdin.write(b"w26 31337\n")
        await proc.stdin.drain()
        assert (await collector.next()).text == "31337"
        await collector.aclose()
    finally:
        if driver is not None:
            await driver.aclose()
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)


# --------------------------------------------------------------------------- conformance


@dataclass
class OsdpGateHarness:
    """The OSDP reader's relay output as a Gate, against the simulator over loopback TCP."""

    sim: OsdpReaderSim
    gate: OsdpReader

    async def opens_received(self) -> int:
        return sum(
            1
            for c in self.sim.received
            if c.kind == "output" and c.fields.get("control_code") in OUTPUT_ON_CODES
        )

    async def set_passage(self, *, passes: bool, delay_s: float = 0.0) -> None:
        self.sim.set_passage(passes=passes, delay_s=delay_s)

    async def stall(self, stalled: bool) -> None:
        self.sim.stall(stalled)

    async def pull_cable(self) -> None:
        self.sim.unplug()

    async def plug_cable(self) -> None:
        self.sim.plug()


@dataclass
class OsdpScanHarness:
    """The OSDP reader's card reads as a ScanSource (no byte wire: texts are card numbers)."""

    sim: OsdpReaderSim
    source: OsdpReader

    async def send_scan(self, text: str) -> None:
        self.sim.present_card(int(text), WiegandFormat.W34)

    async def send_raw(self, data: bytes) -> None:
        raise NotImplementedError("OSDP carries card reads, not a byte stream of text")

    async def pull_cable(self) -> None:
        self.sim.unplug()

    async def plug_cable(self) -> None:
        self.sim.plug()


class TestOsdpGateConformance(GateSuite):
    """The GateSuite for the OSDP output (relay) with the simulator's passage input."""

    @pytest.fixture
    async def harness(self, sim: OsdpReaderSim, reader: OsdpReader) -> OsdpGateHarness:
        return OsdpGateHarness(sim=sim, gate=reader)


class TestOsdpScanSourceConformance(ScanSourceSuite):
    """The ScanSourceSuite for OSDP card reads (Wiegand 34 card numbers)."""

    @pytest.fixture
    async def harness(self, sim: OsdpReaderSim, reader: OsdpReader) -> OsdpScanHarness:
        return OsdpScanHarness(sim=sim, source=reader)
