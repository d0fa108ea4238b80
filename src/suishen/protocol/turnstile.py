"""Turnstile commands for a Modbus relay board, as plain values (sans-I/O).

A lane's gate is a relay board (or a turnstile controller) on Modbus TCP or Modbus RTU. This
module says *what* to send and how to read the answers; drivers/modbus_gate.py sends it through
pymodbus. Nothing here does I/O, reads a clock or imports pymodbus.

Register map of one lane (``TurnstileMap``; the defaults are what the simulator serves)::

    unit                 Modbus unit / device id (1..247)
    coil  open_coil      (0)    the open relay: ON opens the turnstile, OFF releases it
    di    passage_input  (0)    passage latch: set by a passage, cleared by the next open
                                command (so a passage cannot be missed between two polls)
    ir    passage_counter(None) optional passage counter (uint16, wraps); when set the
                                driver detects a passage as a change of this counter
    ir    open_counter   (None) optional count of open commands the board received (uint16)
    hr    pulse_register (None) optional board pulse function ("flash on"): writing N
                                turns the open relay on for N * pulse_unit_ms, then off

Opening: with a pulse register the board times the pulse itself (one transaction, and the relay
drops even if the link dies mid-pulse); otherwise the driver writes the coil ON, then OFF after
the pulse. Keeping shut writes the coil OFF.

Endpoints (``parse_endpoint``)::

    tcp://HOST:PORT            Modbus TCP
    rtu:SERIAL_URL             Modbus RTU on a pyserial URL: rtu:/dev/ttyUSB0,
                               rtu:socket://127.0.0.1:7000, rtu:/tmp/sim/ttyTURNSTILE
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from suishen.protocol.errors import ProtocolError

MAX_ADDRESS = 0xFFFF
MIN_UNIT = 1
MAX_UNIT = 247  # 0 is broadcast (no answer), 248..255 are reserved
MAX_PULSE_MS = 60_000
COUNTER_MODULUS = 0x10000


class TurnstileConfigError(ProtocolError, ValueError):
    """A lane map or endpoint that cannot work; `field` names the offending setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PassageSensing(enum.StrEnum):
    LATCH = "latch"  # discrete input, set by a passage, cleared by the open command
    COUNTER = "counter"  # input register counting passages


class ModbusTransport(enum.StrEnum):
    TCP = "tcp"
    RTU = "rtu"


def _check_address(field: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TurnstileConfigError(field, f"must be an integer, got {value!r}")
    if not 0 <= value <= MAX_ADDRESS:
        raise TurnstileConfigError(field, f"{value} is outside 0..{MAX_ADDRESS}")


def check_pulse_ms(pulse_ms: int) -> int:
    """The pulse length, validated (1..60000 ms)."""
    if isinstance(pulse_ms, bool) or not isinstance(pulse_ms, int):
        raise TurnstileConfigError("pulse_ms", f"must be an integer, got {pulse_ms!r}")
    if not 1 <= pulse_ms <= MAX_PULSE_MS:
        raise TurnstileConfigError("pulse_ms", f"{pulse_ms} is outside 1..{MAX_PULSE_MS}")
    return pulse_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnstileMap:
    """Where one lane's turnstile lives on its Modbus device (see the module docstring)."""

    unit: int = 1
    open_coil: int = 0
    passage_input: int = 0
    passage_counter: int | None = None
    open_counter: int | None = None
    pulse_register: int | None = None
    pulse_unit_ms: int = 100
    pulse_ms: int = 500

    def __post_init__(self) -> None:
        if isinstance(self.unit, bool) or not isinstance(self.unit, int):
            raise TurnstileConfigError("unit", f"must be an integer, got {self.unit!r}")
        if not MIN_UNIT <= self.unit <= MAX_UNIT:
            raise TurnstileConfigError("unit", f"{self.unit} is outside {MIN_UNIT}..{MAX_UNIT}")
        _check_address("open_coil", self.open_coil)
        _check_address("passage_input", self.passage_input)
        _check_address("passage_counter", self.passage_counter)
        _check_address("open_counter", self.open_counter)
        _check_address("pulse_register", self.pulse_register)
        if (
            self.passage_counter is not None
            and self.open_counter is not None
            and self.passage_counter == self.open_counter
        ):
            raise TurnstileConfigError("open_counter", "must differ from passage_counter")
        if isinstance(self.pulse_unit_ms, bool) or not isinstance(self.pulse_unit_ms, int):
            raise TurnstileConfigError("pulse_unit_ms", "must be an integer")
        if not 1 <= self.pulse_unit_ms <= MAX_PULSE_MS:
            raise TurnstileConfigError("pulse_unit_ms", f"{self.pulse_unit_ms} is out of range")
        check_pulse_ms(self.pulse_ms)

    @property
    def sensing(self) -> PassageSensing:
        return PassageSensing.LATCH if self.passage_counter is None else PassageSensing.COUNTER


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteCoil:
    """Modbus function 5: set one coil."""

    unit: int
    address: int
    value: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRegister:
    """Modbus function 6: set one holding register."""

    unit: int
    address: int
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadDiscreteInputs:
    """Modbus function 2: read `count` discrete inputs; the answer is a list of bools."""

    unit: int
    address: int
    count: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadInputRegisters:
    """Modbus function 4: read `count` input registers; the answer is a list of ints."""

    unit: int
    address: int
    count: int = 1


Command = WriteCoil | WriteRegister | ReadDiscreteInputs | ReadInputRegisters


def pulse_register_value(lane: TurnstileMap, pulse_ms: int) -> int:
    """The value for the board's pulse register: pulse_ms in pulse units, rounded up, >= 1."""
    check_pulse_ms(pulse_ms)
    return max(1, min(0xFFFF, math.ceil(pulse_ms / lane.pulse_unit_ms)))


def open_command(lane: TurnstileMap, pulse_ms: int) -> WriteCoil | WriteRegister:
    """The command that opens the gate (the board pulse function when the lane has one)."""
    if lane.pulse_register is not None:
        return WriteRegister(
            unit=lane.unit,
            address=lane.pulse_register,
            value=pulse_register_value(lane, pulse_ms),
        )
    check_pulse_ms(pulse_ms)
    return WriteCoil(unit=lane.unit, address=lane.open_coil, value=True)


def release_command(lane: TurnstileMap) -> WriteCoil | None:
    """The command that ends a driver-timed pulse; None when the board times the pulse."""
    if lane.pulse_register is not None:
        return None
    return WriteCoil(unit=lane.unit, address=lane.open_coil, value=False)


def keep_shut_command(lane: TurnstileMap) -> WriteCoil:
    """Release the open relay (also after a board pulse, to cut it short)."""
    return WriteCoil(unit=lane.unit, address=lane.open_coil, value=False)


def passage_query(lane: TurnstileMap) -> ReadDiscreteInputs | ReadInputRegisters:
    """The read that tells whether a passage happened."""
    if lane.passage_counter is not None:
        return ReadInputRegisters(unit=lane.unit, address=lane.passage_counter)
    return ReadDiscreteInputs(unit=lane.unit, address=lane.passage_input)


def counter_delta(before: int, after: int) -> int:
    """Passages between two readings of a uint16 counter (it wraps at 65536)."""
    for name, value in (("before", before), ("after", after)):
        if not 0 <= value < COUNTER_MODULUS:
            raise TurnstileConfigError(name, f"{value} is not a uint16 counter value")
    return (after - before) % COUNTER_MODULUS


def passage_seen(lane: TurnstileMap, answer: list[bool] | list[int], baseline: int | None) -> bool:
    """Interpret the answer to passage_query(): True when a passage happened.

    Latch sensing: the latch bit. Counter sensing: the counter moved away from `baseline`
    (the reading taken just before the open command).
    """
    if not answer:
        raise TurnstileConfigError("answer", "empty answer to the passage query")
    if lane.passage_counter is None:
        return bool(answer[0])
    if baseline is None:
        raise TurnstileConfigError("baseline", "counter sensing needs a baseline reading")
    return counter_delta(baseline, int(answer[0])) > 0


# --------------------------------------------------------------------------- endpoints

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialSettings:
    """Line settings for Modbus RTU (ignored for TCP and for socket:// serial URLs)."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # "N", "E" or "O"
    stopbits: int = 1

    def __post_init__(self) -> None:
        if self.baudrate not in BAUDRATES:
            raise TurnstileConfigError("baudrate", f"{self.baudrate} is not one of {BAUDRATES}")
        if self.bytesize not in (7, 8):
            raise TurnstileConfigError("bytesize", f"{self.bytesize} is not 7 or 8")
        if self.parity not in ("N", "E", "O"):
            raise TurnstileConfigError("parity", f"{self.parity!r} is not N, E or O")
        if self.stopbits not in (1, 2):
            raise TurnstileConfigError("stopbits", f"{self.stopbits} is not 1 or 2")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusEndpoint:
    """Where the Modbus device is: TCP host and port, or a pyserial URL for RTU."""

    transport: ModbusTransport
    host: str = ""
    port: int = 0
    serial_url: str = ""

    def __post_init__(self) -> None:
        if self.transport is ModbusTransport.TCP:
            if not self.host:
                raise TurnstileConfigError("host", "a TCP endpoint needs a host")
            if not 1 <= self.port <= 0xFFFF:
                raise TurnstileConfigError("port", f"{self.port} is outside 1..65535")
        elif not self.serial_url:
            raise TurnstileConfigError("serial_url", "an RTU endpoint needs a serial URL")

    def __str__(self) -> str:
        if self.transport is ModbusTransport.TCP:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp://{host}:{self.port}"
        return f"rtu:{self.serial_url}"


def parse_endpoint(url: str) -> ModbusEndpoint:
    """`tcp://HOST:PORT` or `rtu:SERIAL_URL` (see the module docstring)."""
    if url.startswith("rtu:"):
        return ModbusEndpoint(transport=ModbusTransport.RTU, serial_url=url[4:])
    if url.startswith("tcp://"):
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise TurnstileConfigError("port", f"bad port in {url!r}") from exc
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise TurnstileConfigError("url", f"unexpected path or query in {url!r}")
        return ModbusEndpoint(
            transport=ModbusTransport.TCP, host=parts.hostname or "", port=port or 502
        )
    raise TurnstileConfigError("url", f"{url!r} is neither tcp://HOST:PORT nor rtu:SERIAL_URL")
