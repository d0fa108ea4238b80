"""The Indicator suite against every implementation: a Honeywell serial scanner's own LED and
tones (vendor commands over a pty) and an OSDP reader's LED and buzzer (libosdp)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from suishen.drivers.base import DeviceState, reconnect_backoff
from suishen.drivers.osdp import OsdpBus, OsdpReader, OsdpReaderConfig
from suishen.drivers.serial_scanner import SerialScanner, SerialScannerConfig
from suishen.drivers.sim.osdp_reader import OsdpReaderSim
from suishen.drivers.sim.scanner import PtyScannerSim
from suishen.protocol.scanner_commands import Action, Vendor, command
from tests.integration.suite_indicator import IndicatorSuite
from tests.integration.suite_scan_source import wait_until

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
GOOD = command(Vendor.HONEYWELL, Action.INDICATE_GOOD)
BAD = command(Vendor.HONEYWELL, Action.INDICATE_BAD)


@dataclass
class HoneywellHarness:
    indicator: SerialScanner
    sim: PtyScannerSim

    def verdicts_seen(self) -> list[str]:
        data, out, i = bytes(self.sim.received), [], 0
        while i < len(data):
            if data.startswith(GOOD, i):
                out.append("allow")
                i += len(GOOD)
            elif data.startswith(BAD, i):
                out.append("deny")
                i += len(BAD)
            else:
                i += 1
        return out

    async def pull_cable(self) -> None:
        self.sim.unplug()
        await wait_until(lambda: self.indicator.state is not DeviceState.CONNECTED, 5.0)

    async def plug_cable(self) -> None:
        self.sim.plug()

    async def connected(self) -> None:
        await wait_until(lambda: self.indicator.state is DeviceState.CONNECTED, 5.0)


class TestHoneywellScannerIndicator(IndicatorSuite):
    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[HoneywellHarness]:
        sim = PtyScannerSim(link=tmp_path / "scanner.tty")
        sim.plug()
        scanner = SerialScanner(
            SerialScannerConfig(
                device_id="lane/scanner",
                url=str(tmp_path / "scanner.tty"),
                vendor=Vendor.HONEYWELL,
                reconnect_initial_s=0.05,
                reconnect_max_s=0.2,
            )
        )
        await scanner.start()
        harness = HoneywellHarness(indicator=scanner, sim=sim)
        await harness.connected()
        yield harness
        await scanner.aclose()
        await sim.aclose()


# OSDP LED colour codes (IEC 60839-11-5 osdp_LED): 1 red, 2 green.
_VERDICT_OF_COLOUR = {1: "deny", 2: "allow"}


@dataclass
class OsdpHarness:
    indicator: OsdpReader
    sim: OsdpReaderSim

    def verdicts_seen(self) -> list[str]:
        return [
            _VERDICT_OF_COLOUR[r.fields["on_color"]]
            for r in self.sim.received
            if r.kind == "led" and r.fields.get("on_color") in _VERDICT_OF_COLOUR
        ]

    async def pull_cable(self) -> None:
        self.sim.unplug()
        await wait_until(lambda: self.indicator.state is not DeviceState.CONNECTED, 5.0)

    async def plug_cable(self) -> None:
        self.sim.plug()

    async def connected(self) -> None:
        await wait_until(lambda: self.indicator.state is DeviceState.CONNECTED, 8.0)


class TestOsdpReaderIndicator(IndicatorSuite):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[OsdpHarness]:
        sim = OsdpReaderSim.on_tcp(scbk=KEY)
        sim.start()
        bus = OsdpBus(
            sim.port,
            [OsdpReaderConfig(address=sim.address, scbk=KEY)],
            backoff=reconnect_backoff(initial_s=0.05, cap_s=0.3),
            dead_after_s=0.6,
            command_timeout_s=0.5,
        )
        reader = bus.reader(sim.address)
        reader._own_bus = True
        await reader.start()
        harness = OsdpHarness(indicator=reader, sim=sim)
        await harness.connected()
        yield harness
        await reader.aclose()
        await asyncio.to_thread(sim.close)
