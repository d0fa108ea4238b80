"""The TCP line scanner driver against the TCP scanner simulator, both ways round."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from suishen.drivers.base import DeviceConfigError, DeviceState
from suishen.drivers.sim.scanner import ScannerWire, TcpScannerSim, TcpSimMode
from suishen.drivers.tcp_scanner import TcpMode, TcpScanner, TcpScannerConfig
from suishen.protocol.framing import Discarded, FramingConfig, Suffix
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
class TcpHarness:
    """A TcpScanner wired to one TcpScannerSim."""

    sim: TcpScannerSim
    source: TcpScanner
    suffix: bytes
    wrong_suffix: bytes
    idle_flush_s: float | None
    discards: list[Discarded] = field(default_factory=list)
    max_length: int = MAX_LENGTH

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


async def _listen_harness() -> TcpHarness:
    """The gateway listens; the simulated scanner connects to it (CRLF, idle flush on)."""
    framing = FramingConfig(suffix=Suffix.CRLF, max_length=MAX_LENGTH, idle_flush_s=IDLE_FLUSH_S)
    discards: list[Discarded] = []
    source = TcpScanner(
        TcpScannerConfig(device_id="lane2-scanner", mode=TcpMode.LISTEN, framing=framing),
        on_discard=discards.append,
    )
    await source.start()
    sim = TcpScannerSim(
        TcpSimMode.CLIENT, port=source.port, wire=ScannerWire(suffix=Suffix.CRLF), reconnect_s=0.02
    )
    await sim.start()
    await wait_state(source, DeviceState.CONNECTED)
    return TcpHarness(
        sim=sim,
        source=source,
        suffix=b"\r\n",
        wrong_suffix=b"\n",
        idle_flush_s=IDLE_FLUSH_S,
        discards=discards,
    )


async def _connect_harness(*, idle_flush_s: float | None) -> TcpHarness:
    """The simulated scanner listens; the gateway connects to it (CR or LF accepted)."""
    sim = TcpScannerSim(TcpSimMode.SERVER, wire=ScannerWire(suffix=Suffix.CR, aim="]Q3"))
    await sim.start()
    framing = FramingConfig(suffix=Suffix.ANY, max_length=MAX_LENGTH, idle_flush_s=idle_flush_s)
    discards: list[Discarded] = []
    source = TcpScanner(
        TcpScannerConfig(
            device_id="lane3-scanner",
            mode=TcpMode.CONNECT,
            port=sim.port,
            framing=framing,
            reconnect_initial_s=0.02,
            reconnect_max_s=0.1,
        ),
        on_discard=discards.append,
    )
    await source.start()
    await wait_state(source, DeviceState.CONNECTED)
    return TcpHarness(
        sim=sim,
        source=source,
        suffix=b"\r",
        wrong_suffix=b"\t",
        idle_flush_s=idle_flush_s,
        discards=discards,
    )


class TestTcpScannerListening(ScanSourceSuite, ByteWireSuite):
    """The conformance suite with the scanner connecting to the gateway."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[TcpHarness]:
        harness = await _listen_harness()
        yield harness
        await harness.sim.aclose()
        await harness.source.aclose()


class TestTcpScannerConnecting(ScanSourceSuite, ByteWireSuite):
    """The conformance suite with the gateway connecting to the scanner."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[TcpHarness]:
        harness = await _connect_harness(idle_flush_s=IDLE_FLUSH_S)
        yield harness
        await harness.source.aclose()
        await harness.sim.aclose()


async def test_each_connection_is_framed_separately() -> None:
    """Two scanners connected at once: half a line from one does not mix with the other's
    lines, and each completes its own scan."""
    harness = await _listen_harness()
    second = TcpScannerSim(TcpSimMode.CLIENT, port=harness.source.port, reconnect_s=0.02)
    await second.start()
    collector = ScanCollector(harness.source)
    collector.start()
    try:
        await wait_until(lambda: harness.source.connected_peers == 2)
        await harness.sim.send_raw(b"FIRST-HA")
        await second.send_scan("SECOND")
        assert (await collector.next()).text == "SECOND"
        await harness.sim.send_raw(b"LF\r\n")
        assert (await collector.next()).text == "FIRST-HALF"
    finally:
        await collector.aclose()
        await second.aclose()
        await harness.sim.aclose()
        await harness.source.aclose()


async def test_one_scanner_leaving_keeps_the_device_connected() -> None:
    """The device stays CONNECTED while at least one scanner is connected."""
    harness = await _listen_harness()
    second = TcpScannerSim(TcpSimMode.CLIENT, port=harness.source.port, reconnect_s=0.02)
    await second.start()
    try:
        await wait_until(lambda: harness.source.connected_peers == 2)
        await second.unplug()
        await wait_until(lambda: harness.source.connected_peers == 1)
        assert harness.source.state is DeviceState.CONNECTED
    finally:
        await second.aclose()
        await harness.sim.aclose()
        await harness.source.aclose()


async def test_aim_identifier_and_any_line_end() -> None:
    """In CONNECT mode with suffix ANY, CR- and LF-ended scans both arrive, AIM id stripped."""
    harness = await _connect_harness(idle_flush_s=None)
    collector = ScanCollector(harness.source)
    collector.start()
    try:
        await harness.sim.send_raw(b"]Q3ONE\rTWO\n")
        one, two = await collector.next(), await collector.next()
        assert (one.text, one.symbology) == ("ONE", "]Q3")
        assert (two.text, two.symbology) == ("TWO", None)
    finally:
        await collector.aclose()
        await harness.source.aclose()
        await harness.sim.aclose()


def test_connect_mode_needs_a_port() -> None:
    """CONNECT mode without a port is an impossible setting."""
    with pytest.raises(DeviceConfigError):
        TcpScannerConfig(device_id="x", mode=TcpMode.CONNECT, port=0)
