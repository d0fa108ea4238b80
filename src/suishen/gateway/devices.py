"""From lane device settings to the real drivers (drivers/), sharing what is shared.

``build_devices(config)`` makes every lane's ScanSource, Gate (or none) and Indicator (or none):

- one ``UhppoteLink`` per ``[[uhppote]]`` controller, shared by every lane that uses one of
  its doors or readers (the link is counted: it runs while any of its drivers is started);
- one ``OsdpBus`` per ``[[osdp]]`` bus; each reader on it is one ``OsdpReader``, which may be a
  lane's scanner, gate and indicator at once (it is started once per lane role set, see
  ``LaneDevices.devices``);
- serial and TCP scanners and Modbus gates are one driver each.

Nothing is started here; ``DeviceSet.start()`` (or each lane, through ``LaneDevices``) starts
the drivers, which then connect and reconnect by themselves. The optional device extras
(pymodbus, uhppoted, libosdp) are imported only when a config uses them.

Secrets (OSDP secure-channel keys) are read here, from the file or environment variable the
config names; a missing one raises ConfigError naming the setting.

Side channels have one path, tagged like the scans: what a lane's drivers say besides scans
(a framer's discards, a device's state changes) reaches the gateway through one listener,
``on_event(lane_id, event)``, with the lane id attached here, where the lane's drivers are
made. Nobody parses a lane out of a device id (an OSDP reader's id names its bus and address,
not a lane). A driver shared by two lanes reports to each. The side channel is not merged
into ``scans()``: a lane's scan loop waits out a passage, and discards (folded by the lane)
and state changes are journalled meanwhile, not behind it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from suishen.drivers.base import Device, DeviceStateChanged, Gate, Indicator, ScanSource
from suishen.drivers.serial_scanner import SerialScanner, SerialScannerConfig
from suishen.drivers.tcp_scanner import TcpScanner, TcpScannerConfig
from suishen.gateway.config import (
    ConfigError,
    ConfigProblem,
    GatewayConfig,
    LaneSettings,
    ModbusGateSettings,
    NoGateSettings,
    OsdpBusSettings,
    OsdpGateSettings,
    OsdpIndicatorSettings,
    OsdpScannerSettings,
    ScannerIndicatorSettings,
    SerialScannerSettings,
    TcpScannerSettings,
    UhppoteControllerSettings,
    UhppoteGateSettings,
    UhppoteScannerSettings,
)
from suishen.protocol.framing import Discarded

__all__ = [
    "DeviceSet",
    "LaneDevices",
    "LaneEvent",
    "LaneEventListener",
    "build_devices",
    "uhppote_link",
]

D = TypeVar("D")

LaneEvent = Discarded | DeviceStateChanged  # what a lane's drivers say besides scans
LaneEventListener = Callable[[str, LaneEvent], None]  # (lane_id, event)


@dataclass(slots=True, kw_only=True)
class LaneDevices:
    """One lane's drivers. ``gate`` is None for a desk lane (gate kind "none")."""

    lane_id: str
    scanner: ScanSource
    gate: Gate | None = None
    indicator: Indicator | None = None

    def devices(self) -> tuple[Device, ...]:
        """The distinct drivers of this lane (an OSDP reader may fill several roles)."""
        out: list[Device] = []
        for device in (self.scanner, self.gate, self.indicator):
            if device is not None and all(device is not d for d in out):
                out.append(device)
        return tuple(out)

    async def start(self) -> None:
        for device in self.devices():
            await device.start()

    async def aclose(self) -> None:
        for device in reversed(self.devices()):
            await device.aclose()


@dataclass(slots=True, kw_only=True)
class DeviceSet:
    """Every lane's drivers, plus the shared UHPPOTE links and OSDP buses behind them."""

    lanes: dict[str, LaneDevices]
    uhppote_links: dict[str, Any] = field(default_factory=dict)  # controller id -> UhppoteLink
    osdp_buses: dict[str, Any] = field(default_factory=dict)  # bus id -> OsdpBus
    _started: list[LaneDevices] = field(default_factory=list)

    def __iter__(self) -> Iterator[LaneDevices]:
        return iter(self.lanes.values())

    def __getitem__(self, lane_id: str) -> LaneDevices:
        return self.lanes[lane_id]

    async def start(self) -> None:
        """Start every lane's drivers (they connect in the background)."""
        for lane in self.lanes.values():
            if lane not in self._started:
                await lane.start()
                self._started.append(lane)

    async def aclose(self) -> None:
        while self._started:
            await self._started.pop().aclose()

    async def __aenter__(self) -> DeviceSet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Factory:
    def __init__(
        self,
        config: GatewayConfig,
        environ: Mapping[str, str],
        on_event: LaneEventListener | None,
    ) -> None:
        self.config = config
        self.environ = environ
        self.on_event = on_event
        self.links: dict[str, Any] = {}
        self.buses: dict[str, Any] = {}
        self._watched: set[tuple[int, str]] = set()

    def watch(self, device: D, lane_id: str) -> D:
        """Send a driver's state changes to on_event, tagged with ``lane_id`` (once per
        driver object and lane: a reader that is a lane's scanner and gate reports once)."""
        if self.on_event is not None and (id(device), lane_id) not in self._watched:
            self._watched.add((id(device), lane_id))
            cast(Any, device).status.subscribe(self._side_channel(lane_id))
        return device

    # ------------------------------------------------------------ shared hardware

    def link(self, controller_id: str) -> Any:
        if controller_id not in self.links:
            self.links[controller_id] = uhppote_link(self.config.controller(controller_id))
        return self.links[controller_id]

    def reader(self, bus_id: str, address: int, lane_id: str) -> Any:
        if bus_id not in self.buses:
            self.buses[bus_id] = self._bus(self.config.bus(bus_id))
        return self.watch(self.buses[bus_id].reader(address), lane_id)

    def _bus(self, b: OsdpBusSettings) -> Any:
        from suishen.drivers.osdp import OsdpBus, OsdpReaderConfig  # noqa: PLC0415 (extra)

        index = next(i for i, bus in enumerate(self.config.osdp) if bus is b)
        readers = []
        for i, r in enumerate(b.readers):
            try:
                scbk = r.read_scbk(self.environ)
            except ConfigError as exc:
                at = f"osdp[{index}].readers[{i}]"
                raise ConfigError(
                    [ConfigProblem(f"{at}.{p.path}", p.message) for p in exc.problems]
                ) from None
            readers.append(
                OsdpReaderConfig(
                    address=r.address,
                    scbk=scbk,
                    device_id=f"osdp-{b.id}-{r.address}",
                    reader_no=r.reader_no,
                    led_number=r.led_number,
                    output_no=r.output_no,
                    passage_input=r.passage_input,
                )
            )
        return OsdpBus(
            b.port,
            readers,
            baudrate=b.baudrate,
            poll_interval_s=b.poll_interval_s,
            dead_after_s=b.dead_after_s,
            refused_retry_s=b.refused_retry_s,
            command_timeout_s=b.command_timeout_s,
        )

    def _side_channel(self, lane_id: str) -> Callable[[LaneEvent], None]:
        """What one lane's drivers say besides scans, tagged with the lane."""
        listener = self.on_event
        assert listener is not None

        def tagged(event: LaneEvent) -> None:
            listener(lane_id, event)

        return tagged

    def _discards_for(self, lane_id: str) -> Callable[[Discarded], None] | None:
        """The framer's discards of one lane's scanner, on the lane's side channel."""
        return None if self.on_event is None else self._side_channel(lane_id)

    # ------------------------------------------------------------ per role

    def scanner(self, lane: LaneSettings) -> ScanSource:
        s = lane.scanner
        device_id = f"{lane.id}/scanner"
        if isinstance(s, SerialScannerSettings):
            return self.watch(
                SerialScanner(
                    SerialScannerConfig(
                        device_id=device_id,
                        url=s.url,
                        baudrate=s.baudrate,
                        bytesize=s.bytesize,
                        parity=s.parity.value,
                        stopbits=s.stopbits,
                        framing=s.framing.to_framing(),
                        vendor=s.vendor,
                        reconnect_initial_s=s.reconnect_initial_s,
                        reconnect_max_s=s.reconnect_max_s,
                    ),
                    on_discard=self._discards_for(lane.id),
                ),
                lane.id,
            )
        if isinstance(s, TcpScannerSettings):
            return self.watch(
                TcpScanner(
                    TcpScannerConfig(
                        device_id=device_id,
                        mode=s.mode,
                        host=s.host,
                        port=s.port,
                        framing=s.framing.to_framing(),
                        max_clients=s.max_clients,
                        idle_timeout_s=s.idle_timeout_s,
                        allowed_peers=s.allowed_peers,
                        connect_timeout_s=s.connect_timeout_s,
                        reconnect_initial_s=s.reconnect_initial_s,
                        reconnect_max_s=s.reconnect_max_s,
                    ),
                    on_discard=self._discards_for(lane.id),
                ),
                lane.id,
            )
        if isinstance(s, OsdpScannerSettings):
            return cast(ScanSource, self.reader(s.bus, s.address, lane.id))
        assert isinstance(s, UhppoteScannerSettings)
        from suishen.drivers.uhppote import UhppoteSwipeSource  # noqa: PLC0415 (optional extra)

        return self.watch(
            UhppoteSwipeSource(self.link(s.controller), doors=s.doors or None, device_id=device_id),
            lane.id,
        )

    def gate(self, lane: LaneSettings) -> Gate | None:
        g = lane.gate
        device_id = f"{lane.id}/gate"
        if isinstance(g, NoGateSettings):
            return None
        if isinstance(g, ModbusGateSettings):
            from suishen.drivers.modbus_gate import ModbusGate  # noqa: PLC0415 (optional extra)

            return self.watch(
                ModbusGate(
                    device_id=device_id,
                    url=g.url,
                    lane=g.turnstile_map(lane.open_pulse_ms),
                    serial=g.serial_settings() if g.url.startswith("rtu:") else None,
                    command_timeout_s=g.command_timeout_s,
                    connect_timeout_s=g.connect_timeout_s,
                    poll_interval_s=g.poll_interval_s,
                    max_missed=g.max_missed,
                ),
                lane.id,
            )
        if isinstance(g, UhppoteGateSettings):
            from suishen.drivers.uhppote import UhppoteGate  # noqa: PLC0415 (optional extra)

            return self.watch(
                UhppoteGate(
                    self.link(g.controller),
                    door=g.door,
                    device_id=device_id,
                    door_delay_s=g.door_delay_s,
                ),
                lane.id,
            )
        assert isinstance(g, OsdpGateSettings)
        return cast(Gate, self.reader(g.bus, g.address, lane.id))

    def indicator(self, lane: LaneSettings, scanner: ScanSource) -> Indicator | None:
        i = lane.indicator
        if i is None:
            return None
        if isinstance(i, ScannerIndicatorSettings):
            assert isinstance(scanner, Indicator), "config check: the scanner is an indicator"
            return scanner
        assert isinstance(i, OsdpIndicatorSettings)
        return cast(Indicator, self.reader(i.bus, i.address, lane.id))


def uhppote_link(c: UhppoteControllerSettings) -> Any:
    """The UhppoteLink of one ``[[uhppote]]`` controller (not started)."""
    from suishen.drivers.uhppote import UhppoteLink  # noqa: PLC0415 (optional extra)

    return UhppoteLink(
        serial=c.serial,
        address=(c.host, c.port),
        listen=(c.listen_host, c.listen_port) if c.listen else None,
        device_id=f"uhppote-{c.id}",
        request_timeout_s=c.request_timeout_s,
        heartbeat_s=c.heartbeat_s,
        down_after=c.down_after,
        set_clock=c.set_clock,
    )


def build_devices(
    config: GatewayConfig,
    *,
    environ: Mapping[str, str] | None = None,
    on_event: LaneEventListener | None = None,
) -> DeviceSet:
    """Every lane's drivers for ``config`` (not started). ``on_event(lane_id, event)`` hears
    each lane's side channel: its devices' state changes (DeviceStateChanged) and what a line
    scanner's framer threw away (Discarded: overlong, garbage, undecodable input), so the lane
    can journal them. Raises ConfigError when a secret the config names cannot be read, and
    DriverError subclasses for settings a driver refuses."""
    factory = _Factory(config, os.environ if environ is None else environ, on_event)
    lanes: dict[str, LaneDevices] = {}
    for lane in config.lanes:
        scanner = factory.scanner(lane)
        lanes[lane.id] = LaneDevices(
            lane_id=lane.id,
            scanner=scanner,
            gate=factory.gate(lane),
            indicator=factory.indicator(lane, scanner),
        )
    return DeviceSet(lanes=lanes, uhppote_links=factory.links, osdp_buses=factory.buses)
