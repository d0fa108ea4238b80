"""Simulators for every device a gateway config names, at the addresses it names.

``simulators(config, environ)`` starts, for each lane, what its settings expect on the other end:
a serial scanner behind a serial-to-Ethernet converter (socket://) as a TCP scanner server, a
TCP line scanner that connects to the gateway (or that the gateway connects to), a Modbus
turnstile board, UHPPOTE controllers and OSDP readers; ``Simulators.send`` presents a scan or a
card at a lane and ``opens`` counts what its gate received. Used by the example-config tests,
the operators' walkthrough and `suishen sim site` (commands/sim.py). Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import urlsplit

from suishen.demo.issuer import IssuerKey
from suishen.drivers.sim.osdp_reader import OsdpReaderSim
from suishen.drivers.sim.scanner import ScannerWire, TcpScannerSim, TcpSimMode
from suishen.drivers.sim.turnstile import TurnstileSimulator
from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.gateway.config import (
    GatewayConfig,
    LaneSettings,
    ModbusGateSettings,
    NoGateSettings,
    OsdpGateSettings,
    OsdpScannerSettings,
    SerialScannerSettings,
    TcpScannerSettings,
    UhppoteGateSettings,
    UhppoteScannerSettings,
)
from suishen.protocol.codes import Identity
from suishen.protocol.framing import Suffix
from suishen.protocol.identity.cnid import cnid_check_digit
from suishen.protocol.vocabulary import Direction

OUTPUT_ON = (2, 4, 5)  # OSDP output control codes that turn the relay on


class NotLoopbackError(ValueError):
    """A device address the simulators cannot take (they listen on loopback only)."""


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of socket://HOST:PORT or tcp://HOST:PORT; examples stay on loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("socket", "tcp") or parts.hostname != "127.0.0.1" or not parts.port:
        raise NotLoopbackError(f"{url}: the simulators take socket:// or tcp://127.0.0.1:PORT")
    return parts.hostname, parts.port


def wire_for(suffix: Suffix) -> ScannerWire:
    return ScannerWire(suffix=Suffix.CRLF if suffix in (Suffix.ANY, Suffix.NONE) else suffix)


@dataclasses.dataclass(slots=True)
class Simulators:
    """Every device of a config, simulated at the address the config names."""

    scanners: dict[str, TcpScannerSim] = dataclasses.field(default_factory=dict)  # by lane
    turnstiles: dict[str, TurnstileSimulator] = dataclasses.field(default_factory=dict)  # lane
    controllers: dict[str, UhppoteSimulator] = dataclasses.field(default_factory=dict)
    readers: dict[tuple[str, int], OsdpReaderSim] = dataclasses.field(default_factory=dict)

    async def send(self, lane: LaneSettings, payload: str | int) -> None:
        """Present a scan (text) or a card (number) at the lane's scanner."""
        scanner = lane.scanner
        if isinstance(scanner, UhppoteScannerSettings):
            assert isinstance(payload, int)
            door = min(scanner.doors) if scanner.doors else 1
            self.controllers[scanner.controller].swipe(payload, door=door)
        elif isinstance(scanner, OsdpScannerSettings):
            assert isinstance(payload, int)
            self.readers[scanner.bus, scanner.address].present_card(payload)
        else:
            assert isinstance(payload, str)
            await self.scanners[lane.id].send_scan(payload)

    def opens(self, lane: LaneSettings) -> int:
        """Open commands the lane's gate simulator has received."""
        gate = lane.gate
        if isinstance(gate, ModbusGateSettings):
            return self.turnstiles[lane.id].opens_received
        if isinstance(gate, UhppoteGateSettings):
            return sum(1 for o in self.controllers[gate.controller].opens if o.door == gate.door)
        if isinstance(gate, OsdpGateSettings):
            reader = self.readers[gate.bus, gate.address]
            return sum(
                1
                for c in reader.received
                if c.kind == "output" and c.fields.get("control_code") in OUTPUT_ON
            )
        assert isinstance(gate, NoGateSettings)
        return 0


@contextlib.asynccontextmanager
async def simulators(
    config: GatewayConfig, environ: Mapping[str, str]
) -> AsyncIterator[Simulators]:
    sims = Simulators()
    async with contextlib.AsyncExitStack() as stack:
        for lane in config.lanes:
            scanner = lane.scanner
            if isinstance(scanner, SerialScannerSettings):
                # socket://: a serial-to-Ethernet converter; the gateway connects to it
                host, port = host_port(scanner.url)
                sim = TcpScannerSim(
                    TcpSimMode.SERVER, host=host, port=port, wire=wire_for(scanner.framing.suffix)
                )
            elif isinstance(scanner, TcpScannerSettings):
                if scanner.host != "127.0.0.1":
                    raise NotLoopbackError(f"lane {lane.id}: scanner host {scanner.host}")
                mode = TcpSimMode.CLIENT if scanner.mode.value == "listen" else TcpSimMode.SERVER
                sim = TcpScannerSim(
                    mode,
                    host=scanner.host,
                    port=scanner.port,
                    wire=wire_for(scanner.framing.suffix),
                )
            else:
                sim = None
            if sim is not None:
                await sim.start()
                stack.push_async_callback(sim.aclose)
                sims.scanners[lane.id] = sim
            if isinstance(lane.gate, ModbusGateSettings):
                host, port = host_port(lane.gate.url)
                turnstile = TurnstileSimulator(
                    lane=lane.gate.turnstile_map(lane.open_pulse_ms),
                    host=host,
                    port=port,
                    delay_s=0.02,
                    pass_probability=1.0,
                )
                await turnstile.start()
                stack.push_async_callback(turnstile.aclose)
                sims.turnstiles[lane.id] = turnstile
        for controller in config.uhppote:
            if not controller.host == controller.listen_host == "127.0.0.1":
                raise NotLoopbackError(f"controller {controller.id}: {controller.host}")
            uhppote = UhppoteSimulator(
                serial=controller.serial, host=controller.host, port=controller.port
            )
            await uhppote.start()
            stack.push_async_callback(uhppote.stop)
            sims.controllers[controller.id] = uhppote
        for bus in config.osdp:
            if len(bus.readers) != 1:
                raise NotLoopbackError(f"OSDP bus {bus.id}: one reader per port, please")
            [reader] = bus.readers
            _, port = host_port(bus.port)
            osdp = OsdpReaderSim.on_tcp(
                port=port,
                address=reader.address,
                scbk=reader.read_scbk(environ),
                passage_delay_s=0.05,
            )
            osdp.start()
            stack.push_async_callback(asyncio.to_thread, osdp.close)
            sims.readers[bus.id, reader.address] = osdp
        yield sims


# --------------------------------------------------------------------------- `suishen sim site`


def visitor(n: int) -> Identity:
    """The n-th generated visitor: a resident with a valid ID number (MOD 11-2) and status G."""
    body = f"310101{1970 + n % 40:04d}0101{n % 1000:03d}"
    return Identity(
        idt="RIC",
        idn=body + cnid_check_digit(body),
        nat="CHN",
        nm=f"访客{n}",
        dob=f"{1970 + n % 40}-01-01",
        st="G",
    )


async def run_site(
    config: GatewayConfig,
    environ: Mapping[str, str],
    *,
    issuer: IssuerKey | None,
    every_s: float,
    count: int | None,
    report: Callable[[str], None],
    stop: asyncio.Event,
) -> int:
    """Simulate the config's devices until ``stop``; with an issuer, present a fresh code of a
    new visitor at each entry lane with a text scanner in turn, every ``every_s`` seconds,
    ``count`` times (None: until stopped); the devices stay up until ``stop``. Returns the
    scans sent."""
    entries = [
        lane
        for lane in config.lanes
        if lane.direction is Direction.IN
        and isinstance(lane.scanner, (SerialScannerSettings, TcpScannerSettings))
    ]
    sent = 0
    async with simulators(config, environ) as sims:
        report(f"simulating {len(config.lanes)} lanes of {config.site.id}")
        while not stop.is_set() and (count is None or sent < count):
            if issuer is not None and entries:
                lane = entries[sent % len(entries)]
                code = issuer.issue(visitor(sent), iat=int(time.time()), ttl_s=120)
                with contextlib.suppress(ConnectionError, OSError):
                    await sims.send(lane, code)
                    sent += 1
                    report(f"scan {sent} at {lane.id}; gate opens so far: {sims.opens(lane)}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await stop.wait()
        await stop.wait()
    return sent
