"""UHPPOTE / WG-protocol TCP/IP access controllers over UDP: a Gate and a ScanSource of swipes.

The controllers speak 64-byte UDP packets (SOM 0x17, function code, serial number LE, payload),
on port 60000 by default, and send events (swipes, door sensor, buttons) to one configured
listener address. The codec is the `uhppoted` library's pure encode/decode functions (bytes in,
dataclasses out); the I/O is ours: asyncio datagram endpoints, so nothing blocks and every call
has a deadline. We never broadcast: requests go to the configured controller address only.

Pieces::

    UhppoteLink          one controller: request socket, event listener, heartbeat, state
     +-- UhppoteGate         Gate: remote-open one door, passage from the door sensor
     +-- UhppoteSwipeSource  ScanSource: card swipes at the controller's readers -> RawScan(CARD)

Several drivers share one link (a controller has one listener address); the link runs while
any of them is started. ``UhppoteLink.set_time`` sets the controller's clock.

State: a heartbeat (get-status every ``heartbeat_s``) keeps the link's state, which each driver
mirrors into its own DeviceStatus (logs carry the driver's device_id): CONNECTED after a
get-status answer and the session setup (set-listener to our UDP port, record-special-events on
so door sensor events are sent, optionally set-time); DISCONNECTED after ``down_after``
consecutive failed requests (logged once down, once back). While down the heartbeat probes with
backoff. A restarted controller is noticed by its event index going backwards (or a listener that
is no longer ours, checked every ``verify_every`` heartbeats) and set up again.

Events: received on our listener socket; if a packet is lost (UDP) or the listener is unset, the
heartbeat's get-status shows a newer event index and the missing events are fetched with
get-event (the polling fallback; ``listen=None`` makes it the only path). Events are deduplicated
by index.

Passage: after ``open()`` the gate is armed; a passage is the door sensor's "door open" event
for its door (event type 2, reason 23: someone pushed the leaf / turnstile arm) arriving after
the open command was sent, by the listener or by the get-status/get-event fallback above. "Door
closed" (24) is not counted: it may be the tail of the previous person's cycle. None within
``timeout_s`` -> NOT_PASSED. Door events need record-special-events, which the setup turns on.
Calls while DISCONNECTED still go out (the request is the probe; at most request_timeout_s,
at once on ICMP port-unreachable) and fail as DeviceUnavailable; a success wakes the heartbeat.
``open(pulse_ms)``: the unlock time is the controller's door delay (whole seconds, its own
setting; ``door_delay_s`` on UhppoteGate sets it at connect); the pulse length is not sent.

Malformed packets (short, long, wrong SOM, another controller's serial, undecodable) are ignored
with a log line and counted in ``UhppoteLink.malformed_packets``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from uhppoted import codec, decode, encode

from suishen.drivers.base import (
    DeviceConfigError,
    DeviceProtocolError,
    DeviceRefused,
    DeviceStatus,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    PassageOutcome,
    PassageReport,
    RawScan,
    ScanKind,
    StateListener,
    reconnect_backoff,
)
from suishen.protocol.device_state import DeviceState

log = structlog.get_logger("suishen.drivers.uhppote")

T = TypeVar("T")

DEFAULT_PORT = 60000
PACKET_SIZE = 64
SOM = codec.SOM
SOM_V6_62 = codec.SOM_v6_62  # firmware v6.62 marks events with 0x19

# Event types and reasons (uhppoted / UHPPOTE protocol documentation).
EVENT_NONE = 0
EVENT_SWIPE = 1
EVENT_DOOR = 2
EVENT_ALARM = 3
REASON_SWIPE = 1
REASON_DOOR_OPEN = 23
REASON_DOOR_CLOSED = 24
REASON_REMOTE_OPEN = 44

# Door control modes (set-door-control).
MODE_NORMALLY_OPEN = 1
MODE_NORMALLY_CLOSED = 2
MODE_CONTROLLED = 3

_MAX_LOGGED_MALFORMED = 20  # then one line per 1000, so a flood cannot flood the log
_RECENT_EVENTS = 512  # event indices remembered for deduplication
_CATCHUP_MAX = 64  # at most this many missed events fetched per heartbeat


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerEvent:
    """One event the controller recorded (swipe, door sensor, button, alarm), as received."""

    serial: int
    index: int
    kind: int  # EVENT_SWIPE, EVENT_DOOR, EVENT_ALARM
    door: int
    card: int
    granted: bool
    direction: int  # 1 in, 2 out
    reason: int
    timestamp: dt.datetime | None  # controller's local clock
    received_mono: float
    received_at: float


EventHandler = Callable[[ControllerEvent], None]


def _check_addr(addr: tuple[str, int], what: str, device_id: str, *, port_zero_ok: bool) -> None:
    host, port = addr
    try:
        ipaddress.IPv4Address(host)
    except ValueError as exc:
        raise DeviceConfigError(
            f"{what} {host!r} is not an IPv4 address", device_id=device_id
        ) from exc
    if not (0 if port_zero_ok else 1) <= port <= 65535:
        raise DeviceConfigError(f"{what} port {port} out of range", device_id=device_id)


def _local_naive(when: dt.datetime | None) -> dt.datetime:
    """Controllers keep naive local time; aware datetimes are converted to local."""
    if when is None:
        return dt.datetime.now(dt.UTC).astimezone().replace(tzinfo=None, microsecond=0)
    if when.tzinfo is not None:
        return when.astimezone().replace(tzinfo=None, microsecond=0)
    return when.replace(microsecond=0)


class _Datagrams(asyncio.DatagramProtocol):
    """Forwards datagrams and socket errors to the link."""

    def __init__(self, on_data: Callable[[bytes], None], on_error: Callable[[Exception], None]):
        self._on_data = on_data
        self._on_error = on_error

    def datagram_received(self, data: bytes, addr: Any) -> None:
        del addr
        self._on_data(data)

    def error_received(self, exc: Exception) -> None:
        self._on_error(exc)


class UhppoteLink:
    """One UHPPOTE controller: requests with deadlines, events, heartbeat and state."""

    def __init__(
        self,
        *,
        serial: int,
        address: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT),
        listen: tuple[str, int] | None = ("127.0.0.1", 0),
        device_id: str | None = None,
        bind_host: str = "127.0.0.1",
        request_timeout_s: float = 0.5,
        heartbeat_s: float = 1.0,
        down_after: int = 2,
        verify_every: int = 10,
        set_clock: bool = True,
    ) -> None:
        self.device_id = device_id or f"uhppote-{serial}"
        if not 0 < serial < 2**32:
            raise DeviceConfigError(f"serial {serial} out of range", device_id=self.device_id)
        _check_addr(address, "controller address", self.device_id, port_zero_ok=False)
        if listen is not None:
            _check_addr(listen, "listen address", self.device_id, port_zero_ok=True)
        _check_addr((bind_host, 0), "bind address", self.device_id, port_zero_ok=True)
        if request_timeout_s <= 0 or heartbeat_s <= 0 or down_after < 1 or verify_every < 1:
            raise DeviceConfigError(
                "timeouts must be > 0 and counts >= 1", device_id=self.device_id
            )
        self.serial = serial
        self.address = address
        self._listen = listen
        self._bind_host = bind_host
        self.request_timeout_s = request_timeout_s
        self.heartbeat_s = heartbeat_s
        self._down_after = down_after
        self._verify_every = verify_every
        self._set_clock = set_clock
        self._state = DeviceState.CONNECTING
        self._detail = ""
        self._state_listeners: list[Callable[[DeviceState, str], None]] = []
        self._log = log.bind(device_id=self.device_id)

        self._requests: asyncio.DatagramTransport | None = None
        self._events: asyncio.DatagramTransport | None = None
        self._listen_bound: tuple[str, int] | None = None
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._locks: dict[int, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._users = 0
        self._failures = 0
        self._needs_setup = True
        self._cursor: int | None = None  # highest event index accounted for by the heartbeat
        self._seen: collections.OrderedDict[int, tuple[Any, ...]] = collections.OrderedDict()
        self._event_handlers: list[EventHandler] = []
        self._setup_hooks: list[Callable[[], Any]] = []
        self.malformed_packets = 0
        self._heartbeats = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def state(self) -> DeviceState:
        """The controller's state; the drivers on this link mirror it into their DeviceStatus
        (which logs once down / once back under each driver's device_id)."""
        return self._state

    def subscribe(self, listener: Callable[[DeviceState, str], None]) -> Callable[[], None]:
        """Call `listener(state, detail)` on every state change; returns the unsubscribe."""
        self._state_listeners.append(listener)
        return lambda: self._state_listeners.remove(listener)

    def _set_state(self, state: DeviceState, detail: str = "") -> None:
        if state is self._state:
            return
        self._state, self._detail = state, detail
        for listener in list(self._state_listeners):
            listener(state, detail)

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """The event listener's bound address (after start), as told to the controller."""
        return self._listen_bound

    async def start(self) -> None:
        """Open the sockets and start the heartbeat; returns without waiting for the controller.

        Counted: each start() needs one aclose(); the link stops when the last user closes.
        """
        self._users += 1
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._requests, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self._on_reply, self._on_reply_error),
                local_addr=(self._bind_host, 0),
                remote_addr=self.address,
            )
            if self._listen is not None:
                self._events, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self._on_event_packet, self._on_listener_error),
                    local_addr=self._listen,
                )
                host, port = self._events.get_extra_info("sockname")[:2]
                self._listen_bound = (host, port)
        except OSError as exc:
            self._users -= 1
            self._close_sockets()
            raise DeviceConfigError(
                f"cannot open UDP sockets: {exc}", device_id=self.device_id
            ) from exc
        self._task = asyncio.create_task(self._heartbeat(), name=f"{self.device_id}-heartbeat")

    async def aclose(self) -> None:
        """Release one user; the last one stops the heartbeat and closes the sockets."""
        self._users = max(0, self._users - 1)
        if self._users > 0 or self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._close_sockets()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionAbortedError("link closed"))
        self._pending.clear()
        self._state = DeviceState.CONNECTING  # quietly: a closed link is not an outage

    def _close_sockets(self) -> None:
        for transport in (self._requests, self._events):
            if transport is not None:
                transport.close()
        self._requests = self._events = None

    # ----------------------------------------------------------------- subscriptions

    def add_event_handler(self, handler: EventHandler) -> Callable[[], None]:
        """Call `handler` for every new controller event; returns the unsubscribe function."""
        self._event_handlers.append(handler)
        return lambda: self._event_handlers.remove(handler)

    def add_setup_hook(self, hook: Callable[[], Any]) -> Callable[[], None]:
        """An async callable run at each (re)connect, after the link's own setup."""
        self._setup_hooks.append(hook)
        return lambda: self._setup_hooks.remove(hook)

    # ----------------------------------------------------------------- requests

    async def _request(self, packet: bytearray, decoder: Callable[[bytes], T], what: str) -> T:
        """Send one request and wait for its reply, within request_timeout_s in all."""
        transport = self._requests
        if transport is None:
            raise DeviceUnavailable(f"{what}: link not started", device_id=self.device_id)
        function = packet[1]
        try:
            async with asyncio.timeout(self.request_timeout_s):
                async with self._locks[function]:
                    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                    self._pending[function] = fut
                    try:
                        transport.sendto(bytes(packet))
                        reply = await fut
                    finally:
                        if self._pending.get(function) is fut:
                            del self._pending[function]
        except TimeoutError as exc:
            self._note_failure(f"{what}: no answer")
            raise DeviceTimeout(
                f"{what}: no answer within {self.request_timeout_s}s", device_id=self.device_id
            ) from exc
        except OSError as exc:
            self._note_failure(f"{what}: {exc}")
            raise DeviceUnavailable(f"{what}: {exc}", device_id=self.device_id) from exc
        self._failures = 0
        try:
            return decoder(reply)
        except (ValueError, IndexError) as exc:
            raise DeviceProtocolError(
                f"{what}: bad reply: {exc}", device_id=self.device_id
            ) from exc

    def _note_failure(self, detail: str) -> None:
        self._failures += 1
        down = self._failures >= self._down_after or self.state is DeviceState.CONNECTING
        if down and self.state is not DeviceState.DISCONNECTED:
            self._needs_setup = True
            self._set_state(DeviceState.DISCONNECTED, detail)

    def _malformed(self, where: str, data: bytes, why: str) -> None:
        self.malformed_packets += 1
        n = self.malformed_packets
        if n <= _MAX_LOGGED_MALFORMED or n % 1000 == 0:
            self._log.warning(
                "uhppote packet ignored",
                where=where,
                why=why,
                length=len(data),
                head=data[:8].hex(),
                ignored_total=n,
            )

    def _frame_problem(self, data: bytes, *, event: bool) -> str | None:
        if len(data) != PACKET_SIZE:
            return f"length {len(data)} != {PACKET_SIZE}"
        if data[0] != SOM and not (event and data[0] == SOM_V6_62):
            return f"start of message 0x{data[0]:02x}"
        if int.from_bytes(data[4:8], "little") != self.serial:
            return f"serial {int.from_bytes(data[4:8], 'little')} is not ours"
        return None

    def _on_reply(self, data: bytes) -> None:
        problem = self._frame_problem(data, event=False)
        if problem is not None:
            self._malformed("reply", data, problem)
            return
        fut = self._pending.get(data[1])
        if fut is None or fut.done():
            self._log.debug("uhppote late or unsolicited reply", function=f"0x{data[1]:02x}")
            return
        fut.set_result(bytes(data))

    def _on_reply_error(self, exc: Exception) -> None:
        # ICMP port unreachable on the connected socket: the controller (simulator) is gone.
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)

    def _on_listener_error(self, exc: Exception) -> None:
        self._log.debug("uhppote listener socket error", error=str(exc))

    # ----------------------------------------------------------------- controller API

    async def get_controller(self) -> Any:
        return await self._request(
            encode.get_controller_request(self.serial),
            decode.get_controller_response,
            "get-controller",
        )

    async def get_status(self) -> Any:
        return await self._request(
            encode.get_status_request(self.serial), decode.get_status_response, "get-status"
        )

    async def get_time(self) -> dt.datetime:
        reply = await self._request(
            encode.get_time_request(self.serial), decode.get_time_response, "get-time"
        )
        when: dt.datetime = reply.datetime
        return when

    async def set_time(self, when: dt.datetime | None = None) -> dt.datetime:
        """Set the controller's clock (default: now, local time); returns the clock it reports."""
        value = _local_naive(when)
        reply = await self._request(
            encode.set_time_request(self.serial, value), decode.set_time_response, "set-time"
        )
        if reply.datetime is None:
            raise DeviceProtocolError("set-time: no valid time in reply", device_id=self.device_id)
        reported: dt.datetime = reply.datetime
        return reported

    async def open_door(self, door: int) -> bool:
        reply = await self._request(
            encode.open_door_request(self.serial, door), decode.open_door_response, "open-door"
        )
        return bool(reply.opened)

    async def get_listener(self) -> tuple[str, int]:
        reply = await self._request(
            encode.get_listener_request(self.serial), decode.get_listener_response, "get-listener"
        )
        return (str(reply.address), reply.port)

    async def set_listener(self, host: str, port: int) -> bool:
        reply = await self._request(
            encode.set_listener_request(self.serial, ipaddress.IPv4Address(host), port, 0),
            decode.set_listener_response,
            "set-listener",
        )
        return bool(reply.ok)

    async def record_special_events(self, enable: bool) -> bool:
        reply = await self._request(
            encode.record_special_events_request(self.serial, enable),
            decode.record_special_events_response,
            "record-special-events",
        )
        return bool(reply.updated)

    async def get_door_control(self, door: int) -> tuple[int, int]:
        """(mode, delay_s) of a door."""
        reply = await self._request(
            encode.get_door_control_request(self.serial, door),
            decode.get_door_control_response,
            "get-door-control",
        )
        return (reply.mode, reply.delay)

    async def set_door_control(self, door: int, mode: int, delay_s: int) -> tuple[int, int]:
        reply = await self._request(
            encode.set_door_control_request(self.serial, door, mode, delay_s),
            decode.set_door_control_response,
            "set-door-control",
        )
        return (reply.mode, reply.delay)

    async def get_event(self, index: int) -> ControllerEvent | None:
        """The stored event at `index`, or None when the controller has no such event."""
        reply = await self._request(
            encode.get_event_request(self.serial, index), decode.get_event_response, "get-event"
        )
        if reply.index != index or reply.event_type in (EVENT_NONE, 0xFF):
            return None
        return ControllerEvent(
            serial=self.serial,
            index=reply.index,
            kind=reply.event_type,
            door=reply.door,
            card=reply.card,
            granted=bool(reply.access_granted),
            direction=reply.direction,
            reason=reply.reason,
            timestamp=reply.timestamp,
            received_mono=time.monotonic(),
            received_at=time.time(),
        )

    # ----------------------------------------------------------------- events

    def _on_event_packet(self, data: bytes) -> None:
        received_mono, received_at = time.monotonic(), time.time()
        problem = self._frame_problem(data, event=True)
        if problem is not None:
            self._malformed("listener", data, problem)
            return
        try:
            ev = decode.event(data)
        except (ValueError, IndexError) as exc:
            self._malformed("listener", data, str(exc))
            return
        if ev.event_index == 0:
            return  # a status broadcast without an event (auto-send interval)
        self._dispatch(
            ControllerEvent(
                serial=ev.controller,
                index=ev.event_index,
                kind=ev.event_type,
                door=ev.event_door,
                card=ev.event_card,
                granted=bool(ev.event_access_granted),
                direction=ev.event_direction,
                reason=ev.event_reason,
                timestamp=ev.event_timestamp,
                received_mono=received_mono,
                received_at=received_at,
            )
        )

    def _dispatch(self, event: ControllerEvent) -> None:
        # Deduplicated by index; the same index with other contents is a new event (the
        # controller's event log was reset, e.g. a replaced controller).
        identity = (event.kind, event.door, event.card, event.reason, event.timestamp)
        if self._seen.get(event.index) == identity:
            return
        self._seen[event.index] = identity
        self._seen.move_to_end(event.index)
        if len(self._seen) > _RECENT_EVENTS:
            self._seen.popitem(last=False)
        for handler in list(self._event_handlers):
            try:
                handler(event)
            except Exception:  # noqa: BLE001 (a subscriber's bug must not stop the events)
                self._log.exception("uhppote event handler failed")

    async def _catch_up(self, newest: int) -> None:
        """Fetch events the listener did not deliver (lost datagrams, listener unset)."""
        if self._cursor is None or newest < self._cursor:
            self._cursor = newest
            return
        first = max(self._cursor + 1, newest - _CATCHUP_MAX + 1)
        for index in range(first, newest + 1):
            if index not in self._seen:
                event = await self.get_event(index)
                if event is not None:
                    self._dispatch(event)
            self._cursor = index

    # ----------------------------------------------------------------- heartbeat

    async def _setup(self) -> None:
        if self._listen_bound is not None:
            host, port = self._listen_bound
            if not await self.set_listener(host, port):
                raise DeviceRefused("set-listener refused", device_id=self.device_id)
        await self.record_special_events(True)
        if self._set_clock:
            await self.set_time()
        for hook in list(self._setup_hooks):
            await hook()

    async def _verify_listener(self) -> None:
        if self._listen_bound is None:
            return
        if await self.get_listener() != self._listen_bound:
            self._log.info("uhppote listener changed; setting it again")
            self._needs_setup = True

    def wake(self) -> None:
        """Run the next heartbeat now (e.g. after a request succeeded while down)."""
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _heartbeat(self) -> None:
        backoff = reconnect_backoff(initial_s=min(0.05, self.heartbeat_s), cap_s=self.heartbeat_s)
        while True:
            try:
                status = await self.get_status()
                if self._cursor is not None and status.event_index < self._cursor:
                    self._log.info("uhppote controller restarted (event index went back)")
                    self._needs_setup = True
                    self._seen.clear()
                self._heartbeats += 1
                if not self._needs_setup and self._heartbeats % self._verify_every == 0:
                    await self._verify_listener()
                if self._needs_setup:
                    await self._setup()
                    self._needs_setup = False
                self._set_state(DeviceState.CONNECTED)
                backoff.reset()
                await self._catch_up(status.event_index)
            except DriverError as exc:
                if isinstance(exc, DeviceProtocolError | DeviceRefused):
                    self._needs_setup = True
                    self._set_state(DeviceState.ERROR, str(exc))
                if self.state is not DeviceState.CONNECTED:
                    await self._sleep(backoff.next_delay())
                    continue
            await self._sleep(self.heartbeat_s)


class _LinkUser:
    """Shared plumbing of the drivers built on a link."""

    def __init__(self, link: UhppoteLink, device_id: str, on_change: StateListener | None) -> None:
        self.link = link
        self.device_id = device_id
        self.status = DeviceStatus(device_id, on_change=on_change)
        self._started = False
        self._unsubscribe: list[Callable[[], None]] = []

    @property
    def state(self) -> DeviceState:
        return self.status.state

    def _mirror(self, state: DeviceState, detail: str) -> None:
        self.status.set(state, detail)

    async def _start_link(self) -> None:
        if not self._started:
            self._unsubscribe.append(self.link.subscribe(self._mirror))
            await self.link.start()
            self._started = True
            self._mirror(self.link.state, "")

    async def _close_link(self) -> None:
        for unsubscribe in self._unsubscribe:
            with contextlib.suppress(ValueError):
                unsubscribe()
        self._unsubscribe.clear()
        if self._started:
            self._started = False
            await self.link.aclose()

    def _check_door(self, door: int) -> int:
        if not 1 <= door <= 4:
            raise DeviceConfigError(f"door {door} not in 1..4", device_id=self.device_id)
        return door


class UhppoteGate(_LinkUser):
    """A Gate on one door of a UHPPOTE controller (remote open; passage from the door sensor)."""

    def __init__(
        self,
        link: UhppoteLink,
        *,
        door: int = 1,
        device_id: str | None = None,
        door_delay_s: int | None = None,
        on_change: StateListener | None = None,
    ) -> None:
        super().__init__(link, device_id or f"{link.device_id}-door{door}", on_change)
        self.door = self._check_door(door)
        if door_delay_s is not None and not 1 <= door_delay_s <= 255:
            raise DeviceConfigError("door_delay_s not in 1..255", device_id=self.device_id)
        self._door_delay_s = door_delay_s
        self._passage: asyncio.Future[float] | None = None
        self._opened_mono: float | None = None
        self._held = False

    async def start(self) -> None:
        if not self._started:
            self._unsubscribe.append(self.link.add_event_handler(self._on_event))
            self._unsubscribe.append(self.link.add_setup_hook(self._reapply_hold))
            if self._door_delay_s is not None:
                self._unsubscribe.append(self.link.add_setup_hook(self._set_delay))
        await self._start_link()

    async def aclose(self) -> None:
        self._disarm()
        await self._close_link()

    async def _set_delay(self) -> None:
        assert self._door_delay_s is not None
        await self.link.set_door_control(self.door, MODE_CONTROLLED, self._door_delay_s)

    async def _reapply_hold(self) -> None:
        """After a (re)connect: a held door is set normally open again (a controller that
        restarted comes back in its stored mode, which may not be ours)."""
        if self._held:
            _, delay = await self.link.get_door_control(self.door)
            await self.link.set_door_control(self.door, MODE_NORMALLY_OPEN, delay)

    @property
    def held(self) -> bool:
        return self._held

    async def hold_open(self) -> None:
        """Emergency release: the door's control mode becomes normally open (its door delay
        kept) until release_hold(); re-applied when the controller is set up again."""
        self._held = True
        self._disarm()
        if not self._started:
            raise DeviceUnavailable("gate not started", device_id=self.device_id)
        _, delay = await self.link.get_door_control(self.door)
        await self.link.set_door_control(self.door, MODE_NORMALLY_OPEN, delay)

    async def release_hold(self) -> None:
        """End the hold: the door back to controlled (locked until the next open)."""
        self._held = False
        await self.keep_shut()

    def _passed(self, at_mono: float) -> None:
        if self._passage is not None and not self._passage.done():
            self._passage.set_result(at_mono)

    def _on_event(self, event: ControllerEvent) -> None:
        if (
            event.kind == EVENT_DOOR
            and event.door == self.door
            and event.reason == REASON_DOOR_OPEN
        ):
            self._passed(event.received_mono)

    def _disarm(self) -> None:
        if self._passage is not None and not self._passage.done():
            self._passage.cancel()
        self._passage = None

    async def open(self, *, pulse_ms: int = 500) -> None:
        """Remote-open the door; the unlock time is the controller's door delay."""
        del pulse_ms  # the controller unlocks for its own door delay (see module docstring)
        if self._held:
            return  # normally open already
        if not self._started:
            raise DeviceUnavailable("gate not started", device_id=self.device_id)
        was_down = self.state is DeviceState.DISCONNECTED
        self._disarm()
        # Armed before sending: a fast door sensor event may beat the open-door reply.
        self._passage = asyncio.get_running_loop().create_future()
        self._opened_mono = time.monotonic()
        try:
            opened = await self.link.open_door(self.door)
        except DeviceTimeout as exc:
            self._disarm()
            if was_down:
                raise DeviceUnavailable(str(exc), device_id=self.device_id) from exc
            raise DeviceTimeout(str(exc), device_id=self.device_id) from exc
        except DriverError:
            self._disarm()
            raise
        if was_down:
            self.link.wake()  # it answers again: set it up and report it now
        if not opened:
            self._disarm()
            raise DeviceRefused(f"door {self.door}: open-door refused", device_id=self.device_id)

    async def keep_shut(self) -> None:
        """Disarm any pending passage and make sure the door is not left normally open (unless
        it is held open on purpose: only release_hold() ends that)."""
        self._disarm()
        if self._held:
            return
        if not self._started:
            raise DeviceUnavailable("gate not started", device_id=self.device_id)
        mode, delay = await self.link.get_door_control(self.door)
        if mode == MODE_NORMALLY_OPEN:
            log.warning(
                "uhppote door was normally open; setting controlled", device_id=self.device_id
            )
            await self.link.set_door_control(self.door, MODE_CONTROLLED, delay)

    async def wait_passage(self, *, timeout_s: float) -> PassageReport:
        """PASSED on the door sensor's "door open" event after open(), else NOT_PASSED after
        timeout_s (also when keep_shut() or another open() disarms the wait)."""
        fut, opened = self._passage, self._opened_mono
        start = time.monotonic()
        base = opened if opened is not None else start
        if fut is None:
            await asyncio.sleep(timeout_s)
            return self._report(PassageOutcome.NOT_PASSED, time.monotonic() - base)
        try:
            async with asyncio.timeout(timeout_s):
                at = await asyncio.shield(fut)
        except TimeoutError:
            return self._report(PassageOutcome.NOT_PASSED, time.monotonic() - base)
        except asyncio.CancelledError:
            if fut.cancelled() and not _current_task_cancelling():
                # disarmed by keep_shut/open/aclose while waiting: nobody passed
                return self._report(PassageOutcome.NOT_PASSED, time.monotonic() - base)
            raise
        if self._passage is fut:
            self._passage = None
        return self._report(PassageOutcome.PASSED, max(0.0, at - base))

    def _report(self, outcome: PassageOutcome, elapsed: float) -> PassageReport:
        return PassageReport(device_id=self.device_id, outcome=outcome, elapsed_s=elapsed)


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class UhppoteSwipeSource(_LinkUser):
    """A ScanSource of card swipes at a controller's readers: RawScan(kind=CARD, text=card)."""

    def __init__(
        self,
        link: UhppoteLink,
        *,
        doors: Iterable[int] | None = None,
        device_id: str | None = None,
        queue_size: int = 1024,
        on_change: StateListener | None = None,
    ) -> None:
        super().__init__(link, device_id or f"{link.device_id}-swipes", on_change)
        self.doors = None if doors is None else frozenset(self._check_door(d) for d in doors)
        self._queue: asyncio.Queue[RawScan | None] = asyncio.Queue(maxsize=queue_size)
        self._closed = False
        self.dropped = 0

    async def start(self) -> None:
        if not self._started:
            if self._closed:
                self._queue = asyncio.Queue(maxsize=self._queue.maxsize)
                self._closed = False
            self._unsubscribe.append(self.link.add_event_handler(self._on_event))
        await self._start_link()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        await self._close_link()

    def _on_event(self, event: ControllerEvent) -> None:
        if event.kind != EVENT_SWIPE or (self.doors is not None and event.door not in self.doors):
            return
        scan = RawScan(
            device_id=self.device_id,
            kind=ScanKind.CARD,
            text=str(event.card),
            received_mono=event.received_mono,
            received_at=event.received_at,
        )
        try:
            self._queue.put_nowait(scan)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("uhppote swipe dropped: queue full", device_id=self.device_id)

    async def scans(self) -> AsyncIterator[RawScan]:
        """Swipes as they arrive (across reconnects) until aclose()."""
        while not self._closed or not self._queue.empty():
            scan = await self._queue.get()
            if scan is None:
                return
            yield scan
