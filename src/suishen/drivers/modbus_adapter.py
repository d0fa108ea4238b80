"""The one module that imports pymodbus (pinned to 3.16.*): a version bump touches this file only.

Client side, ``ModbusClientLink``: one connection to a Modbus device (TCP, or RTU on a pyserial
URL), executing protocol.turnstile commands with a deadline each. pymodbus's own reconnect and
retries are switched off (``reconnect_delay=0``, ``retries=0``): the driver owns reconnecting,
with Backoff. Foreign exceptions are translated here::

    TimeoutError (our deadline)            -> DeviceTimeout
    ConnectionException, OSError           -> DeviceUnavailable
    ModbusIOException, ModbusException,
    an exception response from the device  -> DeviceProtocolError

A connection that drops (TCP EOF, pty hang-up) is reported through ``on_lost`` (pymodbus's
``trace_connect`` hook), so the driver notices a cable pull without sending anything.

Server side, ``ModbusServerLink``: a pymodbus server for a simulated device, on loopback TCP or on
an open pty master (RTU). The device's behaviour lives in a ``DeviceModel`` of plain values; the
link wires it in with pymodbus's documented hooks: ``SimDevice(action=...)`` sees every access
(writes go to the model, reads are refreshed from it first), ``trace_pdu`` marks when a request
frame was decoded, and a stalled model raises NoSuchIdException with ``ignore_missing_devices``,
so the request is dropped unanswered, exactly like a hung device. A catch-all device (id 0)
drops requests for other unit ids, as an RTU bus does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException, NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from suishen.drivers.base import DeviceProtocolError, DeviceTimeout, DeviceUnavailable
from suishen.protocol.turnstile import (
    Command,
    ModbusEndpoint,
    ModbusTransport,
    ReadDiscreteInputs,
    ReadInputRegisters,
    SerialSettings,
    WriteCoil,
    WriteRegister,
)

# pymodbus logs every failed reconnect attempt and dumps frames on errors; our drivers report
# state through DeviceStatus instead. Only quieten it when nobody configured its logger.
_pymodbus_logger = logging.getLogger("pymodbus.logging")
if _pymodbus_logger.level == logging.NOTSET:
    _pymodbus_logger.setLevel(logging.CRITICAL)

# pymodbus gives up on its own only well after our deadline, so ours always decides.
_BACKSTOP_S = 5.0

_FC_READ_COILS = 1
_FC_READ_DISCRETE = 2
_FC_READ_INPUT_REGS = 4
_FC_WRITE_COILS = (5, 15)
_FC_WRITE_REGISTERS = (6, 16)

Answer = list[bool] | list[int] | None

# --------------------------------------------------------------------------- client


class ModbusClientLink:
    """One connection to one Modbus device; every call has a deadline."""

    def __init__(
        self,
        endpoint: ModbusEndpoint,
        *,
        device_id: str,
        serial: SerialSettings | None = None,
        on_lost: Callable[[str], None],
    ) -> None:
        self.endpoint = endpoint
        self.device_id = device_id
        self.serial = serial or SerialSettings()
        self._on_lost = on_lost
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        def trace_connect(up: bool) -> None:
            if not up and self._client is client:
                self._on_lost("connection lost")

        client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if self.endpoint.transport is ModbusTransport.TCP:
            client = AsyncModbusTcpClient(
                self.endpoint.host,
                port=self.endpoint.port,
                name=self.device_id,
                reconnect_delay=0,
                timeout=_BACKSTOP_S,
                retries=0,
                trace_connect=trace_connect,
            )
        else:
            client = AsyncModbusSerialClient(
                self.endpoint.serial_url,
                framer=FramerType.RTU,
                baudrate=self.serial.baudrate,
                bytesize=self.serial.bytesize,
                parity=self.serial.parity,
                stopbits=self.serial.stopbits,
                name=self.device_id,
                reconnect_delay=0,
                timeout=_BACKSTOP_S,
                retries=0,
                trace_connect=trace_connect,
            )
        return client

    async def connect(self, *, timeout_s: float) -> None:
        """Open the connection; DeviceUnavailable if refused, DeviceTimeout if too slow."""
        self.close()
        client = self._new_client()
        self._client = client
        try:
            async with asyncio.timeout(timeout_s):
                ok = await client.connect()
        except TimeoutError as exc:
            self.close()
            raise DeviceTimeout("connect timed out", device_id=self.device_id) from exc
        except (OSError, ModbusException) as exc:
            self.close()
            raise DeviceUnavailable(f"connect failed: {exc}", device_id=self.device_id) from exc
        if not ok:
            self.close()
            raise DeviceUnavailable(f"cannot connect to {self.endpoint}", device_id=self.device_id)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def execute(self, command: Command, *, timeout_s: float) -> Answer:
        """Send one command and return its answer (bits for reads of bits, ints for registers)."""
        client = self._client
        if client is None or not client.connected:
            raise DeviceUnavailable("not connected", device_id=self.device_id)
        try:
            async with asyncio.timeout(timeout_s):
                response = await _send(client, command)
        except TimeoutError as exc:
            raise DeviceTimeout(
                f"no answer within {timeout_s * 1000:.0f} ms", device_id=self.device_id
            ) from exc
        except ConnectionException as exc:
            raise DeviceUnavailable(f"not connected: {exc}", device_id=self.device_id) from exc
        except ModbusIOException as exc:
            raise DeviceProtocolError(f"bad answer: {exc}", device_id=self.device_id) from exc
        except ModbusException as exc:
            raise DeviceProtocolError(str(exc), device_id=self.device_id) from exc
        except OSError as exc:  # serial write on a port that just went away
            raise DeviceUnavailable(f"link error: {exc}", device_id=self.device_id) from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise DeviceProtocolError(
                f"device answered Modbus exception {code} to {type(command).__name__}",
                device_id=self.device_id,
            )
        if isinstance(command, ReadDiscreteInputs):
            return [bool(bit) for bit in response.bits[: command.count]]
        if isinstance(command, ReadInputRegisters):
            return [int(reg) for reg in response.registers[: command.count]]
        return None


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a driver's background task and wait until it has really ended (its error, if
    any, is dropped: the driver is closing). Python 3.11's wait_for (inside pymodbus's connect)
    can swallow a cancellation that lands as its inner call completes, so cancel until done."""
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    if task is not None and not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()


async def _send(client: AsyncModbusTcpClient | AsyncModbusSerialClient, command: Command) -> Any:
    match command:
        case WriteCoil(unit=unit, address=address, value=value):
            return await client.write_coil(address, value, device_id=unit)
        case WriteRegister(unit=unit, address=address, value=value):
            return await client.write_register(address, value, device_id=unit)
        case ReadDiscreteInputs(unit=unit, address=address, count=count):
            return await client.read_discrete_inputs(address, count=count, device_id=unit)
        case ReadInputRegisters(unit=unit, address=address, count=count):
            return await client.read_input_registers(address, count=count, device_id=unit)
    raise TypeError(f"not a Modbus command: {command!r}")  # pragma: no cover


# --------------------------------------------------------------------------- server


class DeviceModel(Protocol):
    """A simulated device's behaviour in plain values, as ModbusServerLink consults it."""

    unit: int
    stalled: bool  # drop requests unanswered
    response_delay_s: float  # answer this late

    def coils_written(self, address: int, values: Sequence[bool], received_mono: float) -> None:
        """A master wrote coils (functions 5 and 15)."""

    def registers_written(self, address: int, values: Sequence[int], received_mono: float) -> None:
        """A master wrote holding registers (functions 6 and 16)."""

    def coil_values(self) -> Mapping[int, bool]:
        """Coils whose value the model owns (refreshed before each read of coils)."""

    def discrete_input_values(self) -> Mapping[int, bool]:
        """Discrete inputs, refreshed before each read of discrete inputs."""

    def input_register_values(self) -> Mapping[int, int]:
        """Input registers, refreshed before each read of input registers."""


class _ByteProtocol(Protocol):
    """What _FdTransport feeds: pymodbus's ModbusProtocol is one (not an asyncio.Protocol)."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class _FdTransport(asyncio.Transport):
    """An asyncio transport over a byte fd (a pty master): add_reader + os.read/os.write."""

    def __init__(self, fd: int, protocol: _ByteProtocol) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._protocol = protocol
        self._closed = False
        self._pending = b""
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._read_ready)

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if data:
            self._protocol.data_received(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            return
        self._pending += bytes(data)
        self._write_ready()

    def _write_ready(self) -> None:
        try:
            written = os.write(self._fd, self._pending) if self._pending else 0
        except BlockingIOError:
            written = 0
        except OSError:
            self.close()
            return
        self._pending = self._pending[written:]
        if self._pending:
            self._loop.add_writer(self._fd, self._write_ready)
        else:
            self._loop.remove_writer(self._fd)

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return len(self._pending)


class ModbusServerLink:
    """A pymodbus server for one simulated device, on loopback TCP or on a pty master (RTU)."""

    def __init__(self, model: DeviceModel, *, bits: int = 256, registers: int = 64) -> None:
        self.model = model
        self._bits = max(16, -(-bits // 16) * 16)
        self._registers = registers
        self._tcp: ModbusTcpServer | None = None
        self._rtu: ModbusSerialServer | None = None
        self._fd_transport: _FdTransport | None = None
        self._internal = False
        self._received_mono = 0.0

    # ------------------------------------------------------------------ datastore

    def _devices(self) -> list[SimDevice]:
        def blocks() -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
            return (
                [SimData(0, count=self._bits, values=False, datatype=DataType.BITS)],
                [SimData(0, count=self._bits, values=False, datatype=DataType.BITS)],
                [SimData(0, count=self._registers, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=self._registers, values=0, datatype=DataType.REGISTERS)],
            )

        async def drop_other_units(*_args: object) -> None:
            raise NoSuchIdException("no such unit on this bus")

        return [
            SimDevice(id=self.model.unit, simdata=blocks(), action=self._action),
            SimDevice(id=0, simdata=blocks(), action=drop_other_units),
        ]

    async def _action(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        _count: int,
        _registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if self._internal:
            return
        model = self.model
        if model.stalled:
            raise NoSuchIdException("device stalled")  # dropped unanswered
        is_write = set_values is not None
        if model.response_delay_s > 0 and (is_write or function_code not in (5, 6)):
            await asyncio.sleep(model.response_delay_s)
            if model.stalled:
                raise NoSuchIdException("device stalled")
        if set_values is not None:
            if function_code in _FC_WRITE_COILS:
                model.coils_written(address, [bool(v) for v in set_values], self._received_mono)
            elif function_code in _FC_WRITE_REGISTERS:
                model.registers_written(address, [int(v) for v in set_values], self._received_mono)
            return
        if function_code == _FC_READ_COILS:
            await self._store(function_code, model.coil_values())
        elif function_code == _FC_READ_DISCRETE:
            await self._store(function_code, model.discrete_input_values())
        elif function_code == _FC_READ_INPUT_REGS:
            await self._store(function_code, model.input_register_values())

    async def _store(
        self, function_code: int, values: Mapping[int, bool] | Mapping[int, int]
    ) -> None:
        server = self._tcp or self._rtu
        if server is None:
            return
        self._internal = True
        try:
            for address, value in values.items():
                await server.async_setValues(self.model.unit, function_code, address, [value])
        finally:
            self._internal = False

    def _trace_pdu(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self._received_mono = time.monotonic()
        return pdu

    # ------------------------------------------------------------------ TCP

    async def start_tcp(self, host: str, port: int) -> int:
        """Listen on host:port (0 = any free port); returns the port."""
        server = ModbusTcpServer(
            self._devices(),
            address=(host, port),
            ignore_missing_devices=True,
            trace_pdu=self._trace_pdu,
        )
        await server.serve_forever(background=True)
        self._tcp = server
        sockets = getattr(server.transport, "sockets", None) or ()
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop_tcp(self) -> None:
        """Stop listening and close every connection (the device is gone)."""
        server, self._tcp = self._tcp, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus is untyped here

    # ------------------------------------------------------------------ RTU on a pty

    def attach_fd(self, fd: int) -> None:
        """Serve Modbus RTU on an open byte fd (a pty master); the link owns and closes it."""
        if self._rtu is None:
            self._rtu = ModbusSerialServer(
                self._devices(),
                framer=FramerType.RTU,
                port="",
                ignore_missing_devices=True,
                trace_pdu=self._trace_pdu,
            )
        protocol = self._rtu.handle_new_connection()
        transport = _FdTransport(fd, protocol)
        self._fd_transport = transport
        protocol.connection_made(transport)

    def detach_fd(self) -> None:
        """Close the fd (a pty master: the other end sees a hang-up)."""
        transport, self._fd_transport = self._fd_transport, None
        if transport is not None:
            transport.close()

    async def aclose(self) -> None:
        self.detach_fd()
        await self.stop_tcp()
        if self._rtu is not None:
            rtu, self._rtu = self._rtu, None
            await rtu.shutdown()  # type: ignore[no-untyped-call]  # pymodbus is untyped here
