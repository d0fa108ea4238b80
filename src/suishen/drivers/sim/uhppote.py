"""A UHPPOTE (WG-protocol) access controller on loopback UDP, speaking the 64-byte protocol.

Requests are parsed per the protocol (SOM 0x17, function, serial LE at 4, payload at 8) and
answered with packets laid out as the `uhppoted` decoders read them (built with its pack_*
helpers). Supported: get-controller, get-status, get-time, set-time, open-door, set-listener,
get-listener, record-special-events, get/set-door-control, get-event. Requests for another
serial (0 = any is accepted), short/long packets or a wrong SOM are ignored, like a controller.

Events (the same layout as a get-status reply, function 0x20) go to the listener address:
swipes (``swipe(card, door=..., granted=...)``) and, when record-special-events is on, the door
events of a remote open: "remote open door" (reason 44), then, if the person passes (with
``passage_probability``, after ``passage_delay_s``), "door open" (23) and "door closed" (24)
``door_hold_s`` later. Every event is kept in the event log that get-event reads.

Inputs: the get-status reply's ``inputs`` byte (offset 50; uhppoted's GetStatusResponse.inputs:
bit 0 the fire-alarm input, bit 1 "lock forced") is ``inputs``, set per bit with
``set_input(bit, level)``; a real controller reports it only when asked, so nothing is sent.

Faults: ``stall(True)`` stops answering and sending (events are still logged); ``stop()`` closes
the socket (cable pull / power off) and ``start()`` brings it back on the same port, keeping its
settings like a controller's flash.

In-process::

    sim = UhppoteSimulator(serial=405419896, port=0)     # ephemeral loopback port
    await sim.start(); sim.address                        # ("127.0.0.1", port)
    sim.swipe(10058400, door=1); sim.opens                 # [OpenReceived(door, received_mono)]
    sim.set_input(0, True)                                 # the fire-alarm input set
    await sim.stop()

CLI: ``suishen sim uhppote --serial 405419896 --port 60000 [--listener 127.0.0.1:60001]``; on
its stdin a card number (optionally ``CARD DOOR``) swipes, ``input BIT 1|0`` sets an input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from uhppoted import codec
from uhppoted.encode import (
    pack_bool,
    pack_datetime,
    pack_IPv4,
    pack_uint8,
    pack_uint16,
    pack_uint32,
)

from suishen.drivers.uhppote import (
    DEFAULT_PORT,
    EVENT_DOOR,
    EVENT_SWIPE,
    MODE_CONTROLLED,
    PACKET_SIZE,
    REASON_DOOR_CLOSED,
    REASON_DOOR_OPEN,
    REASON_REMOTE_OPEN,
    REASON_SWIPE,
    SOM,
)

log = structlog.get_logger("suishen.sim.uhppote")

DIRECTION_IN = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenReceived:
    """One open-door command as the controller received it."""

    door: int
    received_mono: float  # time.monotonic() when the datagram was read


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    index: int
    kind: int
    granted: bool
    door: int
    direction: int
    card: int
    timestamp: dt.datetime
    reason: int


def _bcd(text: str) -> bytes:
    return bytes.fromhex(text)


def _unbcd_datetime(packet: bytes, offset: int) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(packet[offset : offset + 7].hex(), "%Y%m%d%H%M%S")  # noqa: DTZ007 (controller clocks are naive local time)
    except ValueError:
        return None


def _local_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).astimezone().replace(tzinfo=None, microsecond=0)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, sim: UhppoteSimulator) -> None:
        self._sim = sim

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._sim._on_request(data, addr, time.monotonic())

    def error_received(self, exc: Exception) -> None:
        log.debug("uhppote sim socket error", error=str(exc))  # listener gone; events are logged


class UhppoteSimulator:
    """A simulated UHPPOTE controller; see the module docstring."""

    def __init__(
        self,
        *,
        serial: int = 405419896,
        host: str = "127.0.0.1",
        port: int = 0,
        listener: tuple[str, int] | None = None,
        doors: int = 4,
        door_delay_s: int = 3,
        passage_delay_s: float = 0.05,
        passage_probability: float = 1.0,
        door_hold_s: float = 0.05,
        seed: int | None = None,
    ) -> None:
        if not 1 <= doors <= 4:
            raise ValueError("doors must be 1..4")
        self.serial = serial
        self.host = host
        self.port = port
        self.listener = listener
        self.doors = doors
        self.passage_delay_s = passage_delay_s
        self.passage_probability = passage_probability
        self.door_hold_s = door_hold_s
        self.special_events = False
        self.door_control: dict[int, tuple[int, int]] = dict.fromkeys(
            range(1, doors + 1), (MODE_CONTROLLED, door_delay_s)
        )
        self.door_open = [False] * 4
        self.relays = 0
        self.inputs = 0  # the status reply's inputs byte (bit 0: fire alarm)
        self.stalled = False
        self.opens: list[OpenReceived] = []
        self.requests: dict[int, int] = {}
        self.ignored = 0
        self.events: list[_Event] = []
        self._clock_offset = dt.timedelta()
        self._sequence = 0
        self._rng = random.Random(seed)  # noqa: S311 (simulation, not crypto)
        self._transport: asyncio.DatagramTransport | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._raw_replies: list[bytes] = []

    # ----------------------------------------------------------------- lifecycle

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self._transport is not None

    async def start(self) -> None:
        """Bind the controller's UDP port (the same port again after stop())."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=(self.host, self.port)
        )
        self.port = self._transport.get_extra_info("sockname")[1]
        log.debug("uhppote sim up", serial=self.serial, port=self.port)

    async def stop(self) -> None:
        """Power off: close the socket and forget pending door cycles (settings are kept)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.door_open = [False] * 4
        self.relays = 0
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)

    async def __aenter__(self) -> UhppoteSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- controls

    def stall(self, stalled: bool = True) -> None:
        """Stop answering requests and sending events (True), or resume (False)."""
        self.stalled = stalled

    def set_passage(
        self,
        *,
        passes: bool | None = None,
        probability: float | None = None,
        delay_s: float | None = None,
    ) -> None:
        """Whether (or how likely) a person passes after an open, and after how long."""
        if passes is not None:
            self.passage_probability = 1.0 if passes else 0.0
        if probability is not None:
            self.passage_probability = probability
        if delay_s is not None:
            self.passage_delay_s = delay_s

    def set_input(self, bit: int, level: bool) -> None:
        """Set (True) or clear one bit of the inputs byte the get-status reply carries."""
        if not 0 <= bit <= 7:
            raise ValueError("input bit must be 0..7")
        mask = 1 << bit
        self.inputs = (self.inputs | mask) if level else (self.inputs & ~mask)

    @property
    def open_count(self) -> int:
        return len(self.opens)

    def swipe(self, card: int, *, door: int = 1, granted: bool = True) -> int:
        """A card read at a door's reader: log the swipe event and send it; returns its index."""
        if not 0 <= card < 2**32:
            raise ValueError("card number must fit 32 bits")
        reason = REASON_SWIPE if granted else 6  # 6: denied, no access rights
        return self._record(EVENT_SWIPE, door=door, card=card, granted=granted, reason=reason)

    def now(self) -> dt.datetime:
        """The controller's clock."""
        return _local_now() + self._clock_offset

    def send_raw(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        """Send arbitrary bytes to the listener (or `to`), for malformed-packet tests."""
        target = to or self.listener
        if self._transport is not None and target is not None:
            self._transport.sendto(data, target)

    def queue_raw_replies(self, *packets: bytes) -> None:
        """Send these datagrams just before the next reply (junk on the reply path)."""
        self._raw_replies.extend(packets)

    # ----------------------------------------------------------------- events

    def _record(self, kind: int, *, door: int, card: int, granted: bool, reason: int) -> int:
        event = _Event(
            index=len(self.events) + 1,
            kind=kind,
            granted=granted,
            door=door,
            direction=DIRECTION_IN,
            card=card,
            timestamp=self.now(),
            reason=reason,
        )
        self.events.append(event)
        if self.listener is not None and not self.stalled:
            self.send_raw(bytes(self._status_packet(codec.LISTEN_EVENT, event)), self.listener)
        return event.index

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        loop = asyncio.get_running_loop()

        def run() -> None:
            self._timers.discard(handle)
            fn(*args)

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    def _remote_open(self, door: int) -> None:
        bit = 1 << (door - 1)
        self.relays |= bit
        if self.special_events:
            self._record(EVENT_DOOR, door=door, card=0, granted=True, reason=REASON_REMOTE_OPEN)
        _, delay = self.door_control.get(door, (MODE_CONTROLLED, 3))
        self._later(float(delay), self._relock, bit)
        if self._rng.random() < self.passage_probability:
            self._later(self.passage_delay_s, self._door_sensor, door, True)
            self._later(self.passage_delay_s + self.door_hold_s, self._door_sensor, door, False)

    def _relock(self, bit: int) -> None:
        self.relays &= ~bit

    def _door_sensor(self, door: int, is_open: bool) -> None:
        self.door_open[door - 1] = is_open
        if self.special_events:
            reason = REASON_DOOR_OPEN if is_open else REASON_DOOR_CLOSED
            self._record(EVENT_DOOR, door=door, card=0, granted=True, reason=reason)

    # ----------------------------------------------------------------- wire

    def _packet(self, function: int) -> bytearray:
        packet = bytearray(PACKET_SIZE)
        packet[0] = SOM
        packet[1] = function
        pack_uint32(self.serial, packet, 4)
        return packet

    def _status_packet(self, function: int, event: _Event | None) -> bytearray:
        packet = self._packet(function)
        if event is not None:
            pack_uint32(event.index, packet, 8)
            pack_uint8(event.kind, packet, 12)
            pack_bool(event.granted, packet, 13)
            pack_uint8(event.door, packet, 14)
            pack_uint8(event.direction, packet, 15)
            pack_uint32(event.card, packet, 16)
            pack_datetime(event.timestamp, packet, 20)
            pack_uint8(event.reason, packet, 27)
        for i in range(4):
            pack_bool(self.door_open[i], packet, 28 + i)
        now = self.now()
        packet[37:40] = _bcd(f"{now:%H%M%S}")
        self._sequence += 1
        pack_uint32(self._sequence, packet, 40)
        pack_uint8(self.relays, packet, 49)
        pack_uint8(self.inputs, packet, 50)
        packet[51:54] = _bcd(f"{now:%y%m%d}")
        return packet

    def _on_request(self, data: bytes, addr: Any, received_mono: float) -> None:
        if len(data) != PACKET_SIZE or data[0] != SOM:
            self.ignored += 1
            return
        serial = int.from_bytes(data[4:8], "little")
        if serial not in (0, self.serial):
            self.ignored += 1
            return
        function = data[1]
        self.requests[function] = self.requests.get(function, 0) + 1
        if self.stalled or self._transport is None:
            return  # a hung controller: nothing is processed
        if function == codec.OPEN_DOOR:
            self.opens.append(OpenReceived(door=data[8], received_mono=received_mono))
        reply = self._handle(function, data)
        if reply is None:
            self.ignored += 1
            return
        for raw in self._raw_replies:
            self._transport.sendto(raw, addr)
        self._raw_replies.clear()
        self._transport.sendto(bytes(reply), addr)

    def _handle(self, function: int, data: bytes) -> bytearray | None:
        handler = self._HANDLERS.get(function)
        if handler is None:
            return None
        packet = self._packet(function)
        return handler(self, data, packet) or packet

    def _get_status(self, data: bytes, packet: bytearray) -> bytearray:
        del data, packet
        return self._status_packet(codec.GET_STATUS, self.events[-1] if self.events else None)

    def _get_controller(self, data: bytes, packet: bytearray) -> None:
        del data
        pack_IPv4(ipaddress.IPv4Address(self.host), packet, 8)
        pack_IPv4(ipaddress.IPv4Address("255.0.0.0"), packet, 12)
        pack_IPv4(ipaddress.IPv4Address("0.0.0.0"), packet, 16)  # noqa: S104 (a field value)
        packet[20:26] = self.serial.to_bytes(6, "big")  # a stable fake MAC
        packet[26:28] = _bcd("0892")  # firmware v8.92
        packet[28:32] = _bcd("20240101")

    def _get_time(self, data: bytes, packet: bytearray) -> None:
        del data
        pack_datetime(self.now(), packet, 8)

    def _set_time(self, data: bytes, packet: bytearray) -> None:
        wanted = _unbcd_datetime(data, 8)
        if wanted is not None:
            self._clock_offset = wanted - _local_now()
        pack_datetime(self.now(), packet, 8)

    def _open_door(self, data: bytes, packet: bytearray) -> None:
        door = data[8]
        ok = 1 <= door <= self.doors
        pack_bool(ok, packet, 8)
        if ok:
            self._remote_open(door)

    def _set_listener(self, data: bytes, packet: bytearray) -> None:
        host = str(ipaddress.IPv4Address(bytes(data[8:12])))
        port = int.from_bytes(data[12:14], "little")
        self.listener = None if port == 0 else (host, port)
        pack_bool(True, packet, 8)

    def _get_listener(self, data: bytes, packet: bytearray) -> None:
        del data
        host, port = self.listener or ("0.0.0.0", 0)  # noqa: S104 (a field value)
        pack_IPv4(ipaddress.IPv4Address(host), packet, 8)
        pack_uint16(port, packet, 12)

    def _record_special_events(self, data: bytes, packet: bytearray) -> None:
        self.special_events = data[8] != 0
        pack_bool(True, packet, 8)

    def _door_control(self, data: bytes, packet: bytearray) -> None:
        door = data[8]
        if data[1] == codec.SET_DOOR and door in self.door_control:
            self.door_control[door] = (data[9], data[10])
        mode, delay = self.door_control.get(door, (0, 0))
        pack_uint8(door, packet, 8)
        pack_uint8(mode, packet, 9)
        pack_uint8(delay, packet, 10)

    def _get_event(self, data: bytes, packet: bytearray) -> None:
        index = int.from_bytes(data[8:12], "little")
        if 1 <= index <= len(self.events):  # else index 0: no such event
            e = self.events[index - 1]
            pack_uint32(e.index, packet, 8)
            pack_uint8(e.kind, packet, 12)
            pack_bool(e.granted, packet, 13)
            pack_uint8(e.door, packet, 14)
            pack_uint8(e.direction, packet, 15)
            pack_uint32(e.card, packet, 16)
            pack_datetime(e.timestamp, packet, 20)
            pack_uint8(e.reason, packet, 27)

    _HANDLERS: ClassVar[dict[int, Callable[[UhppoteSimulator, bytes, bytearray], Any]]] = {
        codec.GET_STATUS: _get_status,
        codec.GET_CONTROLLER: _get_controller,
        codec.GET_TIME: _get_time,
        codec.SET_TIME: _set_time,
        codec.OPEN_DOOR: _open_door,
        codec.SET_LISTENER: _set_listener,
        codec.GET_LISTENER: _get_listener,
        codec.RECORD_SPECIAL_EVENTS: _record_special_events,
        codec.GET_DOOR: _door_control,
        codec.SET_DOOR: _door_control,
        codec.GET_EVENT: _get_event,
    }


# --------------------------------------------------------------------------- CLI


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return (str(ipaddress.IPv4Address(host or "127.0.0.1")), int(port))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from exc


def add_cli(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "uhppote",
        help="a UHPPOTE access controller on UDP",
        description="Simulate a UHPPOTE controller. Type a card number (optionally 'CARD DOOR') "
        "and Enter to swipe it; the event goes to the listener address. 'input BIT 1' (or 0) "
        "sets (clears) an input bit of the status reply (bit 0: the fire-alarm input).",
    )
    parser.add_argument("--serial", type=int, default=405419896, help="controller serial number")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="UDP port (default 60000)")
    parser.add_argument(
        "--listener", type=_addr, default=None, help="event listener HOST:PORT (set-listener)"
    )
    parser.add_argument("--doors", type=int, default=4, help="number of doors (1..4)")
    parser.add_argument("--passage-delay", type=float, default=0.5, help="seconds to passage")
    parser.add_argument(
        "--passage-probability", type=float, default=1.0, help="chance a person passes (0..1)"
    )
    parser.set_defaults(handler=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    sim = UhppoteSimulator(
        serial=args.serial,
        host=args.host,
        port=args.port,
        listener=args.listener,
        doors=args.doors,
        passage_delay_s=args.passage_delay,
        passage_probability=args.passage_probability,
    )
    asyncio.run(_serve(sim))
    return 0


async def _serve(sim: UhppoteSimulator) -> None:
    await sim.start()
    print(f"uhppote controller {sim.serial} on udp {sim.host}:{sim.port}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = sys.stdin

    def on_line() -> None:
        line = stdin.readline()
        if not line:  # EOF: keep serving, stop reading
            loop.remove_reader(stdin.fileno())
            return
        parts = line.split()
        with contextlib.suppress(ValueError):
            if len(parts) == 3 and parts[0] == "input":
                sim.set_input(int(parts[1]), parts[2] not in ("0", "off"))
                print(f"input {parts[1]} -> {parts[2]} (inputs 0x{sim.inputs:02x})", flush=True)
            elif parts:
                door = int(parts[1]) if len(parts) > 1 else 1
                index = sim.swipe(int(parts[0]), door=door)
                print(f"swipe {parts[0]} door {door} -> event {index}", flush=True)

    with contextlib.suppress(OSError, ValueError, PermissionError):
        loop.add_reader(stdin.fileno(), on_line)
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(stdin.fileno())
        await sim.stop()
