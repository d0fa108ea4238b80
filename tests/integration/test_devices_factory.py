"""gateway.devices: lane device settings -> real drivers, against the real simulators.

Each test writes a config as the operator would (parsed TOML), builds the lanes' drivers with
build_devices(), and checks that a scan from a simulated scanner arrives at the lane's
ScanSource and that an open reaches the simulated gate.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from suishen.demo.simsite import LaneSpec, SimSite
from suishen.drivers.base import (
    DeviceState,
    DeviceStateChanged,
    Gate,
    Indicator,
    PassageOutcome,
    RawScan,
    ScanKind,
    ScanSource,
)
from suishen.drivers.sim.osdp_reader import OsdpReaderSim
from suishen.drivers.sim.scanner import PtyScannerSim, ScannerWire, TcpScannerSim, TcpSimMode
from suishen.drivers.sim.turnstile import TurnstileSimulator
from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.gateway.config import ConfigError, GatewayConfig, load_config, parse_config
from suishen.gateway.devices import DeviceSet, build_devices
from suishen.gateway.journal import JournalRow
from suishen.gateway.service import GatewayService
from suishen.protocol.framing import Suffix
from tests.integration.suite_scan_source import wait_until

SCBK = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
TIMEOUT_S = 5.0


def config_with(lanes: list[dict[str, Any]], **sections: Any) -> GatewayConfig:
    return parse_config(
        {
            "gateway": {"id": "gw-test"},
            "site": {"id": "site-test", "kind": "construction"},
            "lanes": lanes,
            "lists": {"bundle_key_file": "bundle.pub"},
            "privacy": {"pepper_env": "PEPPER", "hub_seal_key_file": "seal.pub"},
            **sections,
        }
    )


async def next_scan(source: ScanSource) -> RawScan:
    async with asyncio.timeout(TIMEOUT_S):
        async for scan in source.scans():
            return scan
    raise AssertionError("scans() ended")


async def connected(*devices: Any) -> None:
    await wait_until(
        lambda: all(d.state is DeviceState.CONNECTED for d in devices), timeout_s=TIMEOUT_S
    )


@pytest.fixture
async def turnstiles() -> AsyncIterator[list[TurnstileSimulator]]:
    sims = [TurnstileSimulator(port=0, delay_s=0.02, pass_probability=1.0) for _ in range(2)]
    for sim in sims:
        await sim.start()
    yield sims
    for sim in sims:
        await sim.aclose()


async def test_line_scanners_and_modbus_gates(turnstiles: list[TurnstileSimulator]) -> None:
    """A pty serial scanner and a TCP scanner each deliver a scan; each lane's open reaches its
    own Modbus turnstile, and the passage comes back; state changes reach on_state."""
    pty = PtyScannerSim(ScannerWire(suffix=Suffix.CR))
    pty.plug()
    tcp = TcpScannerSim(TcpSimMode.SERVER, port=0)
    await tcp.start()
    config = config_with(
        [
            {
                "id": "serial-in",
                "direction": "in",
                "scanner": {"kind": "serial", "url": pty.path, "framing": {"suffix": "cr"}},
                "gate": {"kind": "modbus", "url": turnstiles[0].url},
            },
            {
                "id": "tcp-out",
                "direction": "out",
                "open_pulse_ms": 50,
                "scanner": {"kind": "tcp", "mode": "connect", "port": tcp.port},
                "gate": {"kind": "modbus", "url": turnstiles[1].url},
            },
        ]
    )
    changes: list[tuple[str, DeviceStateChanged]] = []

    def on_event(lane_id: str, event: object) -> None:
        if isinstance(event, DeviceStateChanged):
            changes.append((lane_id, event))

    devices = build_devices(config, on_event=on_event)
    assert [lane.lane_id for lane in devices] == ["serial-in", "tcp-out"]
    try:
        async with devices:
            serial_in, tcp_out = devices["serial-in"], devices["tcp-out"]
            assert isinstance(serial_in.gate, Gate)
            assert isinstance(tcp_out.gate, Gate)
            await connected(serial_in.scanner, serial_in.gate, tcp_out.scanner, tcp_out.gate)

            await pty.send_scan("SSC1:SERIAL")
            scan = await next_scan(serial_in.scanner)
            assert (scan.device_id, scan.text) == ("serial-in/scanner", "SSC1:SERIAL")
            await tcp.send_scan("SSC1:TCP")
            assert (await next_scan(tcp_out.scanner)).text == "SSC1:TCP"

            await tcp_out.gate.open(pulse_ms=50)
            report = await tcp_out.gate.wait_passage(timeout_s=TIMEOUT_S)
            assert report.outcome is PassageOutcome.PASSED
            assert (turnstiles[0].opens_received, turnstiles[1].opens_received) == (0, 1)
        connected_ids = {
            (lane_id, c.device_id) for lane_id, c in changes if c.state is DeviceState.CONNECTED
        }
        assert connected_ids == {
            ("serial-in", "serial-in/scanner"),
            ("serial-in", "serial-in/gate"),
            ("tcp-out", "tcp-out/scanner"),
            ("tcp-out", "tcp-out/gate"),
        }
    finally:
        pty.unplug()
        await tcp.aclose()


async def test_uhppote_lanes_share_one_link_per_controller() -> None:
    """Two lanes on doors 1 and 2 of one controller share its UhppoteLink; swipes go to the
    lane of their door, and each lane's open reaches its own door."""
    async with UhppoteSimulator(port=0, passage_delay_s=0.02) as sim:
        controller = {
            "id": "yard",
            "serial": sim.serial,
            "port": sim.port,
            "heartbeat_s": 0.05,
            "request_timeout_s": 0.2,
        }
        lanes = [
            {
                "id": f"card-{door}",
                "direction": "in" if door == 1 else "out",
                "scanner": {"kind": "uhppote", "controller": "yard", "doors": [door]},
                "gate": {"kind": "uhppote", "controller": "yard", "door": door},
            }
            for door in (1, 2)
        ]
        devices = build_devices(config_with(lanes, uhppote=[controller]))
        assert list(devices.uhppote_links) == ["yard"]
        gates = [devices[f"card-{door}"].gate for door in (1, 2)]
        assert gates[0].link is gates[1].link is devices.uhppote_links["yard"]  # type: ignore[union-attr]
        async with devices:
            card_1, card_2 = devices["card-1"], devices["card-2"]
            await connected(card_1.scanner, card_2.scanner, *gates)
            sim.swipe(1001, door=2)
            sim.swipe(1002, door=1)
            first = await next_scan(card_1.scanner)
            assert (first.kind, first.text) == (ScanKind.CARD, "1002")
            assert (await next_scan(card_2.scanner)).text == "1001"

            assert card_2.gate is not None
            await card_2.gate.open()
            await wait_until(lambda: sim.open_count == 1, timeout_s=TIMEOUT_S)
            assert sim.opens[0].door == 2


@pytest.fixture
async def osdp_sim() -> AsyncIterator[OsdpReaderSim]:
    sim = OsdpReaderSim.on_tcp(scbk=SCBK, passage_delay_s=0.05)
    sim.start()
    yield sim
    await asyncio.to_thread(sim.close)


def osdp_config(sim: OsdpReaderSim) -> GatewayConfig:
    bus = {
        "id": "office",
        "port": sim.port,
        "dead_after_s": 0.6,
        "command_timeout_s": 0.5,
        "readers": [{"address": sim.address, "scbk_env": "TEST_SCBK", "passage_input": 0}],
    }
    reader = {"kind": "osdp", "bus": "office", "address": sim.address}
    lane = {
        "id": "office-in",
        "direction": "in",
        "scanner": reader,
        "gate": reader,
        "indicator": {"kind": "scanner"},
    }
    return config_with([lane], osdp=[bus])


async def test_osdp_reader_is_scanner_gate_and_indicator(osdp_sim: OsdpReaderSim) -> None:
    """One OSDP reader serves a lane as scanner, gate and indicator: one driver object, one bus;
    the key comes from the named environment variable; a card arrives and an open goes out."""
    devices = build_devices(osdp_config(osdp_sim), environ={"TEST_SCBK": SCBK.hex()})
    lane = devices["office-in"]
    assert lane.scanner is lane.gate is lane.indicator
    assert isinstance(lane.indicator, Indicator)
    assert len(lane.devices()) == 1
    assert list(devices.osdp_buses) == ["office"]
    async with devices:
        await connected(lane.scanner)
        osdp_sim.present_card(4242)
        scan = await next_scan(lane.scanner)
        assert (scan.kind, scan.text) == (ScanKind.CARD, "4242")
        assert lane.gate is not None
        await lane.gate.open(pulse_ms=500)
        await osdp_sim.wait_count("output", 1)
        report = await lane.gate.wait_passage(timeout_s=TIMEOUT_S)
        assert report.outcome is PassageOutcome.PASSED


def test_a_missing_osdp_key_names_its_setting(osdp_sim: OsdpReaderSim) -> None:
    """The secure-channel key's environment variable is not set: ConfigError with the path."""
    with pytest.raises(ConfigError) as info:
        build_devices(osdp_config(osdp_sim), environ={})
    assert info.value.paths == ("osdp[0].readers[0].scbk_env",)


def test_a_desk_lane_has_no_gate() -> None:
    """gate kind "none" builds no gate; nothing is started by building."""
    config = config_with(
        [
            {
                "id": "desk",
                "direction": "in",
                "scanner": {"kind": "tcp", "mode": "listen", "port": 0},
                "gate": {"kind": "none"},
            }
        ]
    )
    devices = build_devices(config)
    assert isinstance(devices, DeviceSet)
    assert devices["desk"].gate is None
    assert devices["desk"].scanner.state is DeviceState.CONNECTING


async def test_every_device_row_names_a_configured_lane(
    osdp_sim: OsdpReaderSim, tmp_path: Path
) -> None:
    """A gateway with a serial lane and an OSDP reader lane journals its devices' state
    changes; every device row's lane_id is a configured lane (the OSDP reader's changes are
    tagged by the device factory, not parsed out of its device id "osdp-<bus>-<address>"),
    and the reader's own changes are journalled under its lane."""
    extra = (
        f'[[osdp]]\nid = "office"\nport = "{osdp_sim.port}"\ndead_after_s = 0.6\n'
        f"command_timeout_s = 0.5\n"
        f'[[osdp.readers]]\naddress = {osdp_sim.address}\nscbk_env = "TEST_SCBK"\n'
        f"passage_input = 0\n"
        f'[[lanes]]\nid = "office-in"\ndirection = "in"\nzone = "main"\n'
        f'scanner = {{ kind = "osdp", bus = "office", address = {osdp_sim.address} }}\n'
        f'gate = {{ kind = "osdp", bus = "office", address = {osdp_sim.address} }}\n'
        f'indicator = {{ kind = "scanner" }}\n'
    )
    site = await SimSite.create(tmp_path, lanes=[LaneSpec(id="in-1")], extra_toml=extra)
    try:
        service = GatewayService(
            load_config(site.config_path), environ={**site.environ, "TEST_SCBK": SCBK.hex()}
        )
        lanes = {lane.id for lane in service.config.lanes}
        assert lanes == {"in-1", "office-in"}
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await service.wait_ready()
            reader = service.devices["office-in"].scanner if service.devices else None
            assert reader is not None
            await connected(reader)

            async def device_rows() -> list[JournalRow]:
                rows = await service.journal.read_unsynced(0)
                return [row for row in rows if row.kind == "device"]

            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    rows = await device_rows()
                    if any(
                        json.loads(row.detail or "{}").get("device_id") == reader.device_id
                        for row in rows
                    ):
                        break
                    await asyncio.sleep(0.01)
            assert {row.lane_id for row in rows} <= lanes
            assert {
                row.lane_id
                for row in rows
                if json.loads(row.detail or "{}").get("device_id") == reader.device_id
            } == {"office-in"}
        finally:
            service.stop()
            async with asyncio.timeout(TIMEOUT_S):
                await task
    finally:
        await site.aclose()
