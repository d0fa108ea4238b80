"""The gateway's device sections: lane scanners, gates and indicators (tagged by ``kind``),
the shared hardware they name (UHPPOTE controllers, OSDP buses and readers), and the lane."""

# setting()/optional() wrap dataclasses.field: a Field, not a shared mutable default (RUF009).
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from suishen.drivers.tcp_scanner import TcpMode
from suishen.gateway.config.checks import check_env_name, check_id, one_of, read_secret
from suishen.gateway.records import Direction
from suishen.protocol.framing import FramingConfig, FramingError, Suffix
from suishen.protocol.scanner_commands import Vendor
from suishen.protocol.turnstile import (
    SerialSettings,
    TurnstileConfigError,
    TurnstileMap,
    parse_endpoint,
)
from suishen.settings import ConfigError, ConfigProblem, SettingError, optional, setting

# ----- scanners


class Parity(enum.StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FramingSettings:
    """How a line scanner ends and marks each scan (see protocol.framing)."""

    suffix: Suffix = setting("what ends a scan on the wire", Suffix.ANY)
    prefix: str = setting("fixed text the scanner sends before each scan (empty: none)", "")
    strip_aim: bool = setting("strip a leading AIM symbology id such as ]Q1", True)
    max_length: int = setting("longest accepted scan text, in bytes", 8192, ge=1, le=65536)
    idle_flush_s: float | None = optional(
        "end a scan after this many idle seconds without a suffix (absent: off; required "
        "with suffix none)",
        ge=0.001,
        le=10,
    )
    fallback_encoding: str = setting(
        "encoding tried when a scan is not UTF-8 (empty: none)", "gb18030"
    )

    def to_framing(self) -> FramingConfig:
        return FramingConfig(
            suffix=self.suffix,
            prefix=self.prefix.encode(),
            strip_aim=self.strip_aim,
            max_length=self.max_length,
            idle_flush_s=self.idle_flush_s,
            fallback_encoding=self.fallback_encoding or None,
        )

    def __post_init__(self) -> None:
        try:
            self.to_framing()
        except FramingError as exc:
            raise SettingError("", str(exc)) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SerialScannerSettings:
    """A QR scanner on a serial port (or any pyserial URL)."""

    kind: Literal["serial"] = setting("device kind", "serial")
    url: str = setting("port path or pyserial URL: /dev/ttyUSB0, socket://127.0.0.1:7000")
    baudrate: int = setting("line speed", 9600, ge=50, le=4_000_000)
    bytesize: int = setting("data bits", 8, ge=5, le=8)
    parity: Parity = setting("parity: N, E or O", Parity.NONE)
    stopbits: float = setting("stop bits: 1, 1.5 or 2", 1.0)
    framing: FramingSettings = setting("scan framing", factory=FramingSettings)
    vendor: Vendor | None = optional(
        "vendor command set for beep/LED verdicts (absent: a plain scanner)"
    )
    reconnect_initial_s: float = setting("first reconnect delay", 0.05, ge=0.001, le=60)
    reconnect_max_s: float = setting("longest reconnect delay", 5.0, ge=0.01, le=600)

    def __post_init__(self) -> None:
        if not self.url:
            raise SettingError("url", "must not be empty")
        if self.stopbits not in (1, 1.5, 2):
            raise SettingError("stopbits", f"must be 1, 1.5 or 2, got {self.stopbits}")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise SettingError("reconnect_max_s", "must be at least reconnect_initial_s")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TcpScannerSettings:
    """A QR scanner on a TCP line: it connects to us (listen) or we to it (connect)."""

    kind: Literal["tcp"] = setting("device kind", "tcp")
    mode: TcpMode = setting("listen: the scanner connects to us; connect: we connect to it")
    host: str = setting("listen: address to bind; connect: the scanner's address", "127.0.0.1")
    port: int = setting("TCP port (listen: 0 picks a free one)", ge=0, le=65535)
    framing: FramingSettings = setting("scan framing", factory=FramingSettings)
    max_clients: int = setting(
        "listen: scanners connected at once; when full, a new one evicts the longest idle",
        8,
        ge=1,
        le=256,
    )
    idle_timeout_s: float = setting(
        "listen: drop a connection that sent nothing for this long (0: never); a scanner "
        "reconnects by itself",
        600.0,
        ge=0,
        le=86400,
    )
    allowed_peers: tuple[str, ...] = setting(
        "listen: addresses or CIDR networks scanners may connect from (empty: any); others "
        "are closed at once and logged",
        (),
    )
    connect_timeout_s: float = setting("connect: one attempt's deadline", 3.0, ge=0.01, le=60)
    reconnect_initial_s: float = setting("connect: first reconnect delay", 0.05, ge=0.001, le=60)
    reconnect_max_s: float = setting("connect: longest reconnect delay", 5.0, ge=0.01, le=600)

    def __post_init__(self) -> None:
        if self.mode is TcpMode.CONNECT and self.port == 0:
            raise SettingError("port", "connect mode needs the scanner's port, got 0")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise SettingError("reconnect_max_s", "must be at least reconnect_initial_s")
        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise SettingError(
                    "allowed_peers", f"{peer!r} is not an IP address or CIDR network"
                ) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpScannerSettings:
    """Card reads from an OSDP reader (card numbers only: a QR code does not fit OSDP)."""

    kind: Literal["osdp"] = setting("device kind", "osdp")
    bus: str = setting("the [[osdp]] bus id the reader is on")
    address: int = setting("the reader's OSDP address on that bus", ge=0, le=126)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteScannerSettings:
    """Card swipes at a UHPPOTE controller's readers."""

    kind: Literal["uhppote"] = setting("device kind", "uhppote")
    controller: str = setting("the [[uhppote]] controller id")
    doors: frozenset[int] = setting(
        "the doors whose reader swipes belong to this lane (empty: all)", frozenset(), ge=1, le=4
    )


ScannerSettings = (
    SerialScannerSettings | TcpScannerSettings | OsdpScannerSettings | UhppoteScannerSettings
)


# ----- gates


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModbusGateSettings:
    """A turnstile or relay board on Modbus TCP or RTU: pulse a coil, read passage."""

    kind: Literal["modbus"] = setting("device kind", "modbus")
    url: str = setting("tcp://HOST:PORT, or rtu:SERIAL_URL for Modbus RTU")
    unit: int = setting("Modbus unit (device) id", 1, ge=1, le=247)
    coil: int = setting("the coil that opens the gate", 0, ge=0, le=65535)
    passage_input: int = setting("discrete input latching a passage", 0, ge=0, le=65535)
    passage_counter: int | None = optional(
        "input register counting passages (absent: use passage_input)", ge=0, le=65535
    )
    pulse_register: int | None = optional(
        "holding register of the board's own pulse function (absent: we time the pulse)",
        ge=0,
        le=65535,
    )
    pulse_unit_ms: int = setting("time unit of pulse_register", 100, ge=1, le=60000)
    baudrate: int = setting("RTU only: line speed", 9600)
    parity: Parity = setting("RTU only: parity", Parity.NONE)
    command_timeout_s: float = setting("deadline of one Modbus transaction", 0.25, ge=0.01, le=10)
    connect_timeout_s: float = setting("deadline of one connect attempt", 1.0, ge=0.01, le=60)
    poll_interval_s: float = setting("passage polling interval", 0.01, ge=0.001, le=1)
    max_missed: int = setting("timeouts in a row before reconnecting", 3, ge=1, le=100)

    def turnstile_map(self, pulse_ms: int = 500) -> TurnstileMap:
        return TurnstileMap(
            unit=self.unit,
            open_coil=self.coil,
            passage_input=self.passage_input,
            passage_counter=self.passage_counter,
            pulse_register=self.pulse_register,
            pulse_unit_ms=self.pulse_unit_ms,
            pulse_ms=pulse_ms,
        )

    def serial_settings(self) -> SerialSettings:
        return SerialSettings(baudrate=self.baudrate, parity=self.parity.value)

    def __post_init__(self) -> None:
        names = {"open_coil": "coil", "serial_url": "url", "host": "url", "port": "url"}
        try:
            parse_endpoint(self.url)
            self.turnstile_map()
            self.serial_settings()
        except TurnstileConfigError as exc:
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise SettingError(names.get(exc.field, exc.field), message) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteGateSettings:
    """One door of a UHPPOTE controller: remote open, passage from the door sensor."""

    kind: Literal["uhppote"] = setting("device kind", "uhppote")
    controller: str = setting("the [[uhppote]] controller id")
    door: int = setting("door number on the controller", 1, ge=1, le=4)
    door_delay_s: int | None = optional(
        "unlock time set on the controller at connect (absent: leave the controller's)",
        ge=1,
        le=255,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpGateSettings:
    """The relay output of an OSDP reader; passage from its passage input."""

    kind: Literal["osdp"] = setting("device kind", "osdp")
    bus: str = setting("the [[osdp]] bus id the reader is on")
    address: int = setting("the reader's OSDP address on that bus", ge=0, le=126)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NoGateSettings:
    """No gate (a hotel front desk): decisions are shown and journalled, nothing opens."""

    kind: Literal["none"] = setting("device kind", "none")


GateSettings = ModbusGateSettings | UhppoteGateSettings | OsdpGateSettings | NoGateSettings


# ----- indicators


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScannerIndicatorSettings:
    """The lane's own scanner shows the verdict (a serial scanner with a vendor, or OSDP)."""

    kind: Literal["scanner"] = setting("device kind", "scanner")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpIndicatorSettings:
    """The LED and buzzer of an OSDP reader."""

    kind: Literal["osdp"] = setting("device kind", "osdp")
    bus: str = setting("the [[osdp]] bus id the reader is on")
    address: int = setting("the reader's OSDP address on that bus", ge=0, le=126)


IndicatorSettings = ScannerIndicatorSettings | OsdpIndicatorSettings


# ----- shared hardware


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteControllerSettings:
    """A UHPPOTE access controller (UDP); lanes use its doors and readers by its id."""

    id: str = setting("the controller's id, used by lane devices")
    serial: int = setting("the controller's serial number", ge=1, le=2**32 - 1)
    host: str = setting("the controller's IPv4 address", "127.0.0.1")
    port: int = setting("the controller's UDP port", 60000, ge=1, le=65535)
    listen: bool = setting("receive events on a listener socket (false: poll only)", True)
    listen_host: str = setting("our event listener address, told to the controller", "127.0.0.1")
    listen_port: int = setting("our event listener port (0: any free port)", 0, ge=0, le=65535)
    request_timeout_s: float = setting("deadline of one request", 0.5, ge=0.01, le=10)
    heartbeat_s: float = setting("status poll interval", 1.0, ge=0.01, le=60)
    down_after: int = setting("failed requests in a row before the link is down", 2, ge=1)
    set_clock: bool = setting("set the controller's clock at connect", True)

    def __post_init__(self) -> None:
        check_id("id", self.id)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpReaderSettings:
    """One reader (PD) on an OSDP bus."""

    address: int = setting("OSDP address", ge=0, le=126)
    scbk_file: Path | None = optional(
        "file holding the 16-byte secure-channel key in hex (absent with scbk_env: no secure "
        "channel)"
    )
    scbk_env: str | None = optional("environment variable holding the key in hex")
    reader_no: int = setting("reader number inside the PD", 0, ge=0, le=255)
    led_number: int = setting("LED used for verdicts", 0, ge=0, le=255)
    output_no: int = setting("relay output that opens the door", 0, ge=0, le=255)
    passage_input: int | None = optional(
        "input wired to the passage sensor (absent: none wired)", ge=0, le=255
    )

    def __post_init__(self) -> None:
        one_of(self, "scbk_file", "scbk_env", required=False)
        check_env_name("scbk_env", self.scbk_env)

    def read_scbk(self, environ: Mapping[str, str] | None = None) -> bytes | None:
        """The secure-channel key, or None when the reader has none configured."""
        if self.scbk_file is None and self.scbk_env is None:
            return None
        text = read_secret(self.scbk_file, self.scbk_env, key="scbk", environ=environ)
        try:
            key = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            key = b""
        if len(key) != 16:
            raise ConfigError([ConfigProblem("scbk", "must be 32 hex digits (16 bytes)")])
        return key


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpBusSettings:
    """An OSDP (RS-485) bus with its readers; we are its control panel."""

    id: str = setting("the bus id, used by lane devices")
    port: str = setting("serial port or URL: /dev/ttyUSB1, socket://127.0.0.1:4001")
    baudrate: int = setting("line speed", 115200, ge=9600, le=230400)
    poll_interval_s: float = setting("control panel refresh interval", 0.005, ge=0.001, le=1)
    dead_after_s: float = setting("a reader silent this long is down", 1.0, ge=0.05, le=60)
    refused_retry_s: float = setting("retry interval after a key mismatch", 30.0, ge=0.1)
    command_timeout_s: float = setting("deadline of one command", 1.0, ge=0.01, le=10)
    readers: tuple[OsdpReaderSettings, ...] = setting("the readers on this bus")

    def __post_init__(self) -> None:
        check_id("id", self.id)
        if not self.readers:
            raise SettingError("readers", "a bus needs at least one reader")
        seen: dict[int, int] = {}
        for i, reader in enumerate(self.readers):
            if reader.address in seen:
                raise SettingError(
                    f"readers[{i}].address",
                    f"duplicate address {reader.address} (also readers[{seen[reader.address]}])",
                )
            seen[reader.address] = i

    def reader(self, address: int) -> OsdpReaderSettings | None:
        return next((r for r in self.readers if r.address == address), None)


# ----- lanes


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LaneSettings:
    """One lane: a scanner, a gate (or none) and an optional indicator, with a direction."""

    id: str = setting("the lane's id, unique in this gateway")
    direction: Direction = setting("which way the lane lets people: in, out, checkin, checkout")
    zone: str = setting("the zone the lane leads into (or out of)", "main")
    has_passage_sensor: bool = setting(
        "the gate reports passages (false: an open counts as passed)", True
    )
    passage_timeout_s: float = setting(
        "after an open, how long to wait for the passage", 5.0, ge=0.1, le=300
    )
    open_pulse_ms: int = setting("how long the gate's open relay is pulsed", 500, ge=1, le=60000)
    scan_max_age_s: float = setting(
        "a scan that waited longer than this for the lane (or arrived while the gate was open "
        "for someone else) is journalled as lane_busy and opens nothing",
        2.0,
        ge=0.05,
        le=60,
    )
    discard_interval_s: float = setting(
        "the lane journals input its scanner threw away (garbage, overlong, dropped scans) at "
        "most once per this many seconds; a burst is folded into one record with its count",
        1.0,
        ge=0.01,
        le=60,
    )
    time_profile: str | None = optional(
        "a [time_profiles.NAME]: entries outside it are denied (outside_hours); exits never are"
    )
    scanner: ScannerSettings = setting("the lane's scanner or card reader (by kind)")
    gate: GateSettings = setting("the lane's gate (by kind; kind none for a desk)")
    indicator: IndicatorSettings | None = optional(
        "what shows the verdict, besides the gate (absent: nothing)"
    )

    def __post_init__(self) -> None:
        check_id("id", self.id)
