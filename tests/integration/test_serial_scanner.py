"""The serial line scanner driver against the pty scanner simulator (and over socket://)."""

from __future__ import annotations

import asyncio
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from suishen.drivers.base import DeviceConfigError, DeviceState, Signal
from suishen.drivers.serial_scanner import SerialScanner, SerialScannerConfig
from suishen.drivers.sim.scanner import PtyScannerSim, ScannerWire, TcpScannerSim, TcpSimMode
from suishen.protocol.framing import Discarded, FramingConfig, Suffix
from suishen.protocol.scanner_commands import Action, Vendor, command
from tests.integration.suite_scan_source import (
    ByteWireSuite,
    ScanCollector,
    ScanSourceSuite,
    wait_state,
    wait_until,
)

MAX_LENGTH = 256
IDLE_FLUSH_S = 0.2


@dataclass
class PtyHarness:
    """SerialScanner on the slave side of a PtyScannerSim (via a stable symlink)."""

    sim: PtyScannerSim
    source: SerialScanner
    discards: list[Discarded] = field(default_factory=list)
    suffix: bytes = b"\r"
    max_length: int = MAX_LENGTH
    idle_flush_s: float | None = IDLE_FLUSH_S
    wrong_suffix: bytes = b"\n"

    async def send_scan(self, text: str) -> None:
        await self.sim.send_scan(text)

    async def send_raw(self, data: bytes) -> None:
        await self.sim.send_raw(data)

    async def pull_cable(self) -> None:
        self.sim.unplug()

    async def plug_cable(self) -> None:
        self.sim.plug()

    def frame(self, text: str) -> bytes:
        return self.sim.wire.frame(text)

    def discard_reasons(self) -> list[str]:
        return [d.reason.value for d in self.discards]


@dataclass
class SocketUrlHarness:
    """SerialScanner opened as socket://127.0.0.1:PORT (an RS-232-to-Ethernet converter)."""

    sim: TcpScannerSim
    source: SerialScanner
    discards: list[Discarded] = field(default_factory=list)
    suffix: bytes = b"\n"
    max_length: int = MAX_LENGTH
    idle_flush_s: float | None = None
    wrong_suffix: bytes = b"\r"

    async def send_scan(self, text: str) -> None:
        await self.sim.send_scan(text)

    async def send_raw(self, data: bytes) -> None:
        await self.sim.send_raw(data)

    async def pull_cable(self) -> None:
        await self.sim.unplug()

    async def plug_cable(self) -> None:
        await self.sim.plug()

    def frame(self, text: str) -> bytes:
        return self.sim.wire.frame(text)

    def discard_reasons(self) -> list[str]:
        return [d.reason.value for d in self.discards]


def _serial_config(url: str, framing: FramingConfig, **extra: object) -> SerialScannerConfig:
    return SerialScannerConfig(
        device_id="lane1-scanner",
        url=url,
        framing=framing,
        reconnect_initial_s=0.02,
        reconnect_max_s=0.1,
        **extra,  # type: ignore[arg-type]
    )


async def _pty_harness(tmp_path: Path, **extra: object) -> tuple[PtyHarness, PtyScannerSim]:
    sim = PtyScannerSim(ScannerWire(suffix=Suffix.CR, aim="]Q1"), link=tmp_path / "ttyScanner")
    sim.plug()
    framing = FramingConfig(suffix=Suffix.CR, max_length=MAX_LENGTH, idle_flush_s=IDLE_FLUSH_S)
    discards: list[Discarded] = []
    source = SerialScanner(_serial_config(sim.path, framing, **extra), on_discard=discards.append)
    await source.start()
    await wait_state(source, DeviceState.CONNECTED)
    return PtyHarness(sim=sim, source=source, discards=discards), sim


class TestSerialScannerOnPty(ScanSourceSuite, ByteWireSuite):
    """The conformance suite over a real pty pair, CR suffix, AIM ids, idle flush on."""

    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[PtyHarness]:
        harness, sim = await _pty_harness(tmp_path)
        yield harness
        await harness.source.aclose()
        await sim.aclose()


class TestSerialScannerOverSocketUrl(ScanSourceSuite, ByteWireSuite):
    """The conformance suite with the port opened as socket://, LF suffix, no idle flush."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[SocketUrlHarness]:
        sim = TcpScannerSim(TcpSimMode.SERVER, wire=ScannerWire(suffix=Suffix.LF))
        await sim.start()
        framing = FramingConfig(suffix=Suffix.LF, max_length=MAX_LENGTH)
        discards: list[Discarded] = []
        source = SerialScanner(
            _serial_config(f"socket://127.0.0.1:{sim.port}", framing), on_discard=discards.append
        )
        await source.start()
        await wait_state(source, DeviceState.CONNECTED)
        yield SocketUrlHarness(sim=sim, source=source, discards=discards)
        await source.aclose()
        await sim.aclose()


async def test_symbology_is_reported(tmp_path: Path) -> None:
    """The AIM id the scanner sends is stripped from the text and reported as symbology."""
    harness, sim = await _pty_harness(tmp_path)
    collector = ScanCollector(harness.source)
    collector.start()
    try:
        await sim.send_scan("HC1:XYZ")
        scan = await collector.next()
        assert (scan.text, scan.symbology) == ("HC1:XYZ", "]Q1")
    finally:
        await collector.aclose()
        await harness.source.aclose()
        await sim.aclose()


async def test_line_settings_reach_the_port(tmp_path: Path) -> None:
    """Baud rate and stop bits from the config are applied to the tty (a pty accepts those;
    it refuses parity and byte sizes other than 8, see the next test)."""
    harness, sim = await _pty_harness(tmp_path, baudrate=19200, stopbits=2)
    try:
        attrs = sim.line_settings()
        cflag = attrs[2]
        assert attrs[4] == termios.B19200
        assert cflag & termios.CSIZE == termios.CS8
        assert cflag & termios.CSTOPB
    finally:
        await harness.source.aclose()
        await sim.aclose()


async def test_refused_line_settings_report_error(tmp_path: Path) -> None:
    """A port that refuses the line settings (a pty has no parity) puts the driver in
    ERROR with the reason, and it keeps running (no crashed task) until closed."""
    sim = PtyScannerSim(ScannerWire(), link=tmp_path / "ttyParity")
    sim.plug()
    source = SerialScanner(_serial_config(sim.path, FramingConfig(), parity="E"))
    await source.start()
    try:
        await wait_state(source, DeviceState.ERROR)
        assert "Invalid argument" in source.status.last_error
        await asyncio.sleep(0.15)
        assert source.state is DeviceState.ERROR
    finally:
        await source.aclose()
        await sim.aclose()


async def test_honeywell_indicator_writes_host_ack_commands(tmp_path: Path) -> None:
    """With the Honeywell command set, show() writes the Host ACK escape commands: green LED
    + good-read indication to allow, the error tone to deny; send_command writes a trigger."""
    harness, sim = await _pty_harness(tmp_path, vendor=Vendor.HONEYWELL)
    try:
        await harness.source.show(Signal.allow())
        await wait_until(lambda: len(sim.received) >= 4)
        assert bytes(sim.received) == b"\x1b1\x1b7"
        sim.received.clear()
        await harness.source.show(Signal.deny())
        assert await harness.source.send_command(command(Vendor.HONEYWELL, Action.TRIGGER_ON))
        await wait_until(lambda: len(sim.received) >= 5)
        assert bytes(sim.received) == b"\x1b8\x16T\r"
    finally:
        await harness.source.aclose()
        await sim.aclose()


async def test_plain_scanner_show_writes_nothing(tmp_path: Path) -> None:
    """Without a vendor command set show() is a no-op (best effort, never raises)."""
    harness, sim = await _pty_harness(tmp_path)
    try:
        await harness.source.show(Signal.allow())
        await asyncio.sleep(0.05)
        assert sim.received == bytearray()
    finally:
        await harness.source.aclose()
        await sim.aclose()


async def test_port_missing_at_start_then_appears(tmp_path: Path) -> None:
    """A port that does not exist yet: the driver keeps retrying and connects once the
    device appears, without the caller doing anything."""
    sim = PtyScannerSim(ScannerWire(suffix=Suffix.CR), link=tmp_path / "late")
    source = SerialScanner(_serial_config(str(tmp_path / "late"), FramingConfig()))
    await source.start()
    try:
        await wait_state(source, DeviceState.DISCONNECTED)
        sim.plug()
        await wait_state(source, DeviceState.CONNECTED)
    finally:
        await source.aclose()
        await sim.aclose()


def test_impossible_settings_are_refused() -> None:
    """Bad parity, byte size or stop bits raise DeviceConfigError naming the device."""
    with pytest.raises(DeviceConfigError, match="lane1-scanner"):
        _serial_config("/dev/null", FramingConfig(), parity="X")
    with pytest.raises(DeviceConfigError):
        _serial_config("/dev/null", FramingConfig(), bytesize=9)
    with pytest.raises(DeviceConfigError):
        _serial_config("/dev/null", FramingConfig(), stopbits=3)
