"""protocol.turnstile: lane maps, the commands they produce, passage interpretation, endpoints."""

from __future__ import annotations

import dataclasses

import pytest

from suishen.protocol.errors import ProtocolError
from suishen.protocol.turnstile import (
    ModbusTransport,
    PassageSensing,
    ReadDiscreteInputs,
    ReadInputRegisters,
    SerialSettings,
    TurnstileConfigError,
    TurnstileMap,
    WriteCoil,
    WriteRegister,
    counter_delta,
    keep_shut_command,
    open_command,
    parse_endpoint,
    passage_query,
    passage_seen,
    pulse_register_value,
    release_command,
)


def test_default_map_is_the_simulators_map() -> None:
    """The defaults: unit 1, open coil 0, passage latch on discrete input 0, latch sensing."""
    lane = TurnstileMap()
    assert (lane.unit, lane.open_coil, lane.passage_input) == (1, 0, 0)
    assert lane.sensing is PassageSensing.LATCH
    assert TurnstileMap(passage_counter=3).sensing is PassageSensing.COUNTER


def test_map_is_frozen() -> None:
    """A lane map cannot be changed after it is validated."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        TurnstileMap().unit = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit", 0),
        ("unit", 248),
        ("unit", True),
        ("open_coil", -1),
        ("open_coil", 0x10000),
        ("passage_input", 70000),
        ("passage_counter", -5),
        ("pulse_register", 1.5),
        ("pulse_ms", 0),
        ("pulse_ms", 60_001),
        ("pulse_unit_ms", 0),
    ],
)
def test_invalid_maps_are_refused_naming_the_field(field: str, value: object) -> None:
    """Out-of-range or mistyped settings raise TurnstileConfigError naming the setting."""
    with pytest.raises(TurnstileConfigError) as info:
        TurnstileMap(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
    assert isinstance(info.value, ProtocolError)
    assert isinstance(info.value, ValueError)


def test_counters_must_differ() -> None:
    """The passage counter and the open counter cannot share a register."""
    with pytest.raises(TurnstileConfigError):
        TurnstileMap(passage_counter=4, open_counter=4)


def test_coil_pulse_commands() -> None:
    """Without a pulse register: open writes the coil ON, release and keep-shut write it OFF."""
    lane = TurnstileMap(unit=7, open_coil=3)
    assert open_command(lane, 500) == WriteCoil(unit=7, address=3, value=True)
    assert release_command(lane) == WriteCoil(unit=7, address=3, value=False)
    assert keep_shut_command(lane) == WriteCoil(unit=7, address=3, value=False)


def test_board_pulse_commands() -> None:
    """With a pulse register: open is one register write in pulse units, nothing to release."""
    lane = TurnstileMap(unit=2, pulse_register=10, pulse_unit_ms=100)
    assert open_command(lane, 500) == WriteRegister(unit=2, address=10, value=5)
    assert release_command(lane) is None
    assert keep_shut_command(lane) == WriteCoil(unit=2, address=0, value=False)


@pytest.mark.parametrize(("pulse_ms", "units"), [(1, 1), (100, 1), (101, 2), (60_000, 600)])
def test_pulse_register_value_rounds_up(pulse_ms: int, units: int) -> None:
    """The pulse is never shorter than asked: ms are rounded up to whole pulse units."""
    lane = TurnstileMap(pulse_register=0, pulse_unit_ms=100)
    assert pulse_register_value(lane, pulse_ms) == units


def test_open_refuses_bad_pulse() -> None:
    """A pulse outside 1..60000 ms is a config error, for both open styles."""
    for lane in (TurnstileMap(), TurnstileMap(pulse_register=0)):
        with pytest.raises(TurnstileConfigError):
            open_command(lane, 0)


def test_passage_queries() -> None:
    """Latch sensing reads the discrete input; counter sensing reads the input register."""
    assert passage_query(TurnstileMap(unit=3, passage_input=9)) == ReadDiscreteInputs(
        unit=3, address=9
    )
    assert passage_query(TurnstileMap(unit=3, passage_counter=4)) == ReadInputRegisters(
        unit=3, address=4
    )


def test_passage_seen_latch() -> None:
    """Latch: the bit is the answer; no baseline needed."""
    lane = TurnstileMap()
    assert passage_seen(lane, [True], None)
    assert not passage_seen(lane, [False], None)


def test_passage_seen_counter_with_wrap() -> None:
    """Counter: any change since the baseline is a passage, across the uint16 wrap."""
    lane = TurnstileMap(passage_counter=0)
    assert not passage_seen(lane, [41], 41)
    assert passage_seen(lane, [42], 41)
    assert passage_seen(lane, [0], 0xFFFF)
    with pytest.raises(TurnstileConfigError):
        passage_seen(lane, [1], None)
    with pytest.raises(TurnstileConfigError):
        passage_seen(lane, [], 0)


@pytest.mark.parametrize(
    ("before", "after", "delta"), [(0, 0, 0), (5, 7, 2), (0xFFFF, 0, 1), (0xFFFE, 3, 5)]
)
def test_counter_delta(before: int, after: int, delta: int) -> None:
    """Passages between two counter readings, modulo 65536."""
    assert counter_delta(before, after) == delta


def test_counter_delta_refuses_non_uint16() -> None:
    """A reading outside 0..65535 is not a counter value."""
    with pytest.raises(TurnstileConfigError):
        counter_delta(0, 0x10000)


@pytest.mark.parametrize(
    ("url", "transport", "host", "port", "serial_url"),
    [
        ("tcp://127.0.0.1:1502", ModbusTransport.TCP, "127.0.0.1", 1502, ""),
        ("tcp://localhost", ModbusTransport.TCP, "localhost", 502, ""),
        ("tcp://[::1]:15020", ModbusTransport.TCP, "::1", 15020, ""),
        ("rtu:/dev/ttyUSB0", ModbusTransport.RTU, "", 0, "/dev/ttyUSB0"),
        ("rtu:socket://127.0.0.1:7000", ModbusTransport.RTU, "", 0, "socket://127.0.0.1:7000"),
    ],
)
def test_parse_endpoint(
    url: str, transport: ModbusTransport, host: str, port: int, serial_url: str
) -> None:
    """TCP endpoints give host and port (default 502); RTU endpoints keep the pyserial URL."""
    endpoint = parse_endpoint(url)
    assert (endpoint.transport, endpoint.host, endpoint.port, endpoint.serial_url) == (
        transport,
        host,
        port,
        serial_url,
    )


def test_endpoint_round_trips_through_str() -> None:
    """str(endpoint) is a URL that parses back to the same endpoint."""
    for url in ("tcp://127.0.0.1:1502", "tcp://[::1]:15020", "rtu:/dev/ttyS1"):
        endpoint = parse_endpoint(url)
        assert parse_endpoint(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    "url", ["udp://127.0.0.1:502", "tcp://:502", "tcp://h:99999", "tcp://h:1/x", "rtu:", "/dev/x"]
)
def test_bad_endpoints(url: str) -> None:
    """Unknown schemes, missing hosts, bad ports, paths and empty serial URLs are refused."""
    with pytest.raises(TurnstileConfigError):
        parse_endpoint(url)


def test_serial_settings_validation() -> None:
    """Only real line settings are accepted."""
    assert SerialSettings(baudrate=19200, parity="E").parity == "E"
    for bad in ({"baudrate": 12345}, {"bytesize": 6}, {"parity": "X"}, {"stopbits": 3}):
        with pytest.raises(TurnstileConfigError):
            SerialSettings(**bad)  # type: ignore[arg-type]
