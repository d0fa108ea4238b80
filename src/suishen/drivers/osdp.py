"""OSDP (IEC 60839-11-5) card readers, as the Control Panel, through libosdp (extra ``osdp``).

One ``OsdpBus`` is the CP of one RS-485 bus (a serial device, a pty, or ``socket://host:port``
for a reader behind a serial-to-TCP converter); each reader on it is an ``OsdpReader``, which is
at once a ScanSource (card reads), an Indicator (LED and buzzer) and a Gate (the reader's relay
output, with passage from one of its inputs).

The codec is protocol.osdp (sans-I/O): the libosdp numbers, the command and event dicts, field
checks, the card-read -> scan text translation (card data is at most 64 bytes: IC cards and
short tokens, never a signed QR code) and the reply sniffer. This module is its transport.

Card reads become ``RawScan(kind=CARD)`` with protocol.osdp.card_read_text's text and
symbology; a Wiegand read with a wrong parity bit is a misread: dropped with one warning (the
person presents the card again).

Signals: ``Signal.colour`` becomes a temporary LED state for ``hold_ms``, ``Signal.beeps`` one
buzzer command (protocol.osdp.signal_commands). Prompts are not shown (readers have no display
here).

Gate: ``open(pulse_ms)`` is a timed output pulse (control code 5, 100 ms units, 1..255:
at most 25.5 s, the width libosdp's binding passes); ``keep_shut`` sets the output
permanently off. ``wait_passage`` returns PASSED when the configured input goes active after
the open (the reader reports input status unsolicited); readers without a passage input
(``passage_input=None``) cannot report one: wait_passage then waits out the timeout and says
NOT_PASSED -- wire such a door's sensor through a Modbus board instead.

Secure channel: each reader has its own SCBK (16 bytes). When the reader's cryptogram does not
verify (a key mismatch), the reader is *refused*: its state becomes ERROR with a detail
saying so (DeviceStatus logs it once), commands raise DeviceRefused, and the CP retries
quietly every ``refused_retry_s`` in case the key is fixed. The mismatch is recognised on
the wire: the reader answered the challenge (an osdp_CCRYPT, security block type 0x12) and
the CP still dropped it.

Guards: every value is checked against its OSDP field before it reaches libosdp (which
truncates to uint8 or crashes on oversize data); protocol.osdp's OsdpFieldError becomes this
module's OsdpFieldError (a DriverError naming the device, the field, the value and the limit).

Threads: libosdp is driven by one refresh thread per bus; only that thread touches the
libosdp context and the byte link. Commands go to it through a queue and come back as
futures; card reads, input changes and state changes come back to the event loop with
loop.call_soon_threadsafe. Nothing here blocks the event loop.

Recovery: libosdp parks a reader that stopped answering for 300 s; the bus thread instead
restarts the reader (disable + enable) with backoff, reopens a lost link with backoff, and
declares a connected reader down when it has sent nothing for ``dead_after_s``.

Exceptions: the drivers.base tree, plus::

    DriverError
     +-- OsdpFieldError (also ValueError)   a value does not fit its OSDP field
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import osdp_sys
import serial
import structlog

from suishen.drivers.base import (
    DeviceConfigError,
    DeviceRefused,
    DeviceStatus,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    PassageOutcome,
    PassageReport,
    RawScan,
    ScanKind,
    Signal,
    StateListener,
    reconnect_backoff,
)
from suishen.protocol import osdp as codec
from suishen.protocol.backoff import Backoff
from suishen.protocol.device_state import DeviceState
from suishen.protocol.osdp import CARD_DATA_MAX, SCBK_LEN, UNITS_MAX, ReplySniffer

__all__ = [
    "CARD_DATA_MAX",
    "SCBK_LEN",
    "UNITS_MAX",
    "OsdpBus",
    "OsdpFieldError",
    "OsdpReader",
    "OsdpReaderConfig",
    "ReplySniffer",
    "card_read_event",
    "signal_commands",
]

log = structlog.get_logger("suishen.drivers.osdp")


class OsdpFieldError(DriverError, ValueError):
    """A value does not fit its OSDP field; refused before it reaches libosdp."""

    def __init__(self, field_name: str, value: object, limit: str, *, device_id: str) -> None:
        super().__init__(f"{field_name}={value!r} out of range ({limit})", device_id=device_id)
        self.field = field_name
        self.value = value
        self.limit = limit


@contextlib.contextmanager
def _fields_checked(device_id: str) -> Iterator[None]:
    """protocol.osdp's OsdpFieldError, raised inside, becomes this layer's (for device_id)."""
    try:
        yield
    except codec.OsdpFieldError as exc:
        raise OsdpFieldError(exc.field, exc.value, exc.limit, device_id=device_id) from exc


def card_read_event(
    data: bytes, *, bit_length: int | None = None, reader_no: int = 0, device_id: str = "osdp"
) -> dict[str, Any]:
    """protocol.osdp.card_read_event, its field errors naming ``device_id``."""
    with _fields_checked(device_id):
        return codec.card_read_event(data, bit_length=bit_length, reader_no=reader_no)


def signal_commands(
    signal: Signal, *, reader_no: int = 0, led_number: int = 0, device_id: str = "osdp"
) -> list[dict[str, Any]]:
    """The LED and buzzer commands showing ``signal`` (protocol.osdp.signal_commands), checked."""
    with _fields_checked(device_id):
        return codec.signal_commands(
            signal.colour.value,
            hold_ms=signal.hold_ms,
            beeps=signal.beeps,
            reader_no=reader_no,
            led_number=led_number,
        )


# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True, kw_only=True)
class OsdpReaderConfig:
    """One reader (PD) on a bus."""

    address: int  # OSDP address, 0..126
    scbk: bytes | None  # 16-byte secure-channel base key; None = no secure channel
    device_id: str = ""  # defaults to "osdp-<address>"
    reader_no: int = 0  # reader number inside the PD (LED/buzzer/card reads)
    led_number: int = 0
    output_no: int = 0  # the relay that opens the door
    passage_input: int | None = 0  # the input that reports a passage; None = none wired

    def __post_init__(self) -> None:
        if not self.device_id:
            object.__setattr__(self, "device_id", f"osdp-{self.address}")
        dev = self.device_id
        if not 0 <= self.address <= 126:
            raise DeviceConfigError(f"address {self.address} not in 0..126", device_id=dev)
        if self.scbk is not None and len(self.scbk) != SCBK_LEN:
            raise DeviceConfigError(f"scbk must be {SCBK_LEN} bytes", device_id=dev)
        for name in ("reader_no", "led_number", "output_no"):
            if not 0 <= getattr(self, name) <= 255:
                raise DeviceConfigError(f"{name} not in 0..255", device_id=dev)
        if self.passage_input is not None and not 0 <= self.passage_input <= 255:
            raise DeviceConfigError("passage_input not in 0..255", device_id=dev)


# --------------------------------------------------------------------------- the link


class _TcpPort:
    """``socket://host:port`` as a non-blocking port (pyserial's socket handler sleeps 0.3 s
    in close() and leaks the socket when the peer has gone)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"expected socket://host:port, got {url!r}")
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=1.0)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setblocking(False)

    def read(self, size: int) -> bytes:
        try:
            data = self._sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return b""
        if not data:
            raise ConnectionResetError("peer closed the connection")
        return data

    def write(self, data: bytes) -> int:
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def reset_input_buffer(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(4096):
                pass

    def close(self) -> None:
        self._sock.close()


class _Link:
    """libosdp's channel (read/write/flush) over a pyserial port; never raises into C."""

    def __init__(self, bus: OsdpBus) -> None:
        self.id = 0
        self._bus = bus
        self.port: Any = None

    def read(self, max_bytes: int) -> bytes:
        if self.port is None:
            return b""
        try:
            data: bytes = self.port.read(max_bytes)
        except Exception as exc:  # noqa: BLE001 (termios.error too; nothing may raise into C)
            self._bus._link_lost(f"read failed: {exc}")
            return b""
        if data:
            self._bus._sniffer.feed(data, time.monotonic())
        return data

    def write(self, buf: bytes) -> int:
        if self.port is None:
            return 0
        try:
            written = self.port.write(buf)
        except Exception as exc:  # noqa: BLE001 (as in read)
            self._bus._link_lost(f"write failed: {exc}")
            return 0
        return len(buf) if written is None else int(written)

    def flush(self) -> None:
        if self.port is None:
            return
        try:
            self.port.reset_input_buffer()
        except Exception as exc:  # noqa: BLE001 (as in read)
            self._bus._link_lost(f"flush failed: {exc}")


# --------------------------------------------------------------------------- the bus (CP)


@dataclass(slots=True)
class _PdTrack:
    """Bus-thread bookkeeping for one PD."""

    idx: int
    config: OsdpReaderConfig
    up: bool = False
    refused: bool = False
    restart_at: float | None = None  # when to disable+enable it
    offline_seen: bool = False  # libosdp said offline since the last restart
    trying_since: float = field(default_factory=time.monotonic)  # down (or new) since
    online_notified: bool = False  # libosdp's last PD_STATUS notification said online
    secure_notified: bool = False  # libosdp's last SC_STATUS notification said active
    reported_down: bool = False
    backoff: Backoff = field(default_factory=reconnect_backoff)
    pending: collections.deque[tuple[int, asyncio.Future[None]]] = field(
        default_factory=collections.deque
    )
    can_led: bool = True
    can_buzzer: bool = True
    can_output: bool = True


class OsdpBus:
    """The Control Panel of one bus; readers are ``bus.reader(address)``."""

    def __init__(
        self,
        port: str,
        readers: Sequence[OsdpReaderConfig],
        *,
        baudrate: int = 115200,
        poll_interval_s: float = 0.005,
        dead_after_s: float = 1.0,
        refused_retry_s: float = 30.0,
        command_timeout_s: float = 1.0,
        backoff: Backoff | None = None,
        libosdp_log_level: int = osdp_sys.LOG_EMERG,
    ) -> None:
        if not readers:
            raise DeviceConfigError("a bus needs at least one reader", device_id=port)
        addresses = [r.address for r in readers]
        if len(set(addresses)) != len(addresses):
            raise DeviceConfigError("two readers share an address", device_id=port)
        self.port = port
        self.baudrate = baudrate
        self.poll_interval_s = poll_interval_s
        self.dead_after_s = dead_after_s
        self.refused_retry_s = refused_retry_s
        self.command_timeout_s = command_timeout_s
        self._backoff = backoff or reconnect_backoff()
        self._libosdp_log_level = libosdp_log_level
        self._tracks = [_PdTrack(idx=i, config=c) for i, c in enumerate(readers)]
        self._readers = {c.address: OsdpReader(self, c) for c in readers}
        self._by_idx = [self._readers[c.address] for c in readers]
        self._sniffer = ReplySniffer()
        self._link = _Link(self)
        self._link_error = ""
        self._open_at = 0.0
        # (pd index, command, future); (pd index, None, None) reports a loop-side timeout
        self._commands: queue.SimpleQueue[
            tuple[int, dict[str, Any] | None, asyncio.Future[None] | None]
        ] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._users = 0
        self._ctx: Any = None

    def reader(self, address: int) -> OsdpReader:
        return self._readers[address]

    @property
    def readers(self) -> list[OsdpReader]:
        return list(self._by_idx)

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        osdp_sys.set_loglevel(self._libosdp_log_level)
        info = []
        for track in self._tracks:
            cfg = track.config
            flags = osdp_sys.FLAG_ENABLE_NOTIFICATION
            if cfg.scbk is not None:
                flags |= osdp_sys.FLAG_ENFORCE_SECURE
            info.append(
                {
                    "name": cfg.device_id,
                    "address": cfg.address,
                    "flags": flags,
                    "scbk": cfg.scbk,
                    "channel": self._link,
                    # PD identity fields: don't-cares for a CP
                    "version": 0,
                    "model": 0,
                    "vendor_code": 0,
                    "serial_number": 0,
                    "firmware_version": 0,
                }
            )
        self._ctx = osdp_sys.ControlPanel(info)
        self._ctx.set_event_callback(self._on_event)
        self._ctx.set_command_completion_callback(self._on_completion)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"osdp-cp {self.port}", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        await asyncio.to_thread(thread.join, 5.0)
        self._close_port()
        self._ctx = None
        for reader in self._by_idx:
            reader._closed()

    async def _acquire(self) -> None:
        self._users += 1
        await self.start()

    async def _release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await self.aclose()

    # ------------------------------------------------------------ called from the event loop

    def _submit(self, idx: int, command: dict[str, Any]) -> asyncio.Future[None]:
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._commands.put((idx, command, fut))
        self._wake.set()
        return fut

    def _command_timed_out(self, idx: int) -> None:
        self._commands.put((idx, None, None))
        self._wake.set()

    # ------------------------------------------------------------ the bus thread

    def _post(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing under us
                loop.call_soon_threadsafe(callback, *args)

    def _resolve(self, fut: asyncio.Future[None], exc: BaseException | None) -> None:
        def settle() -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

        self._post(settle)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step(time.monotonic())
            except Exception:
                log.exception("osdp bus step failed", port=self.port)
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()
        self._fail_pending(lambda dev: DeviceUnavailable("driver closed", device_id=dev))

    def _step(self, now: float) -> None:
        if self._link.port is None:
            if now < self._open_at:
                self._drain_commands()
                return
            self._open_port(now)
            if self._link.port is None:
                self._drain_commands()
                return
        self._drain_commands()
        self._ctx.refresh()
        if self._link.port is None:  # lost during this refresh
            return
        online = self._ctx.status()
        secure = self._ctx.sc_status()
        for track in self._tracks:
            self._update(
                track, now, bool(online & (1 << track.idx)), bool(secure & (1 << track.idx))
            )

    def _open_port(self, now: float) -> None:
        try:
            if self.port.startswith("socket://"):
                port: Any = _TcpPort(self.port)
            else:
                port = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=0, write_timeout=1.0
                )
        except (OSError, serial.SerialException, ValueError) as exc:
            self._open_at = now + self._backoff.next_delay()
            self._link_error = f"cannot open {self.port}: {exc}"
            for track in self._tracks:
                self._set_state(track, DeviceState.DISCONNECTED, self._link_error)
            return
        self._backoff.reset()
        self._link.port = port
        self._sniffer = ReplySniffer()
        for track in self._tracks:
            self._restart(track, now)

    def _close_port(self) -> None:
        port, self._link.port = self._link.port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _link_lost(self, detail: str) -> None:
        self._close_port()
        self._sniffer = ReplySniffer()
        self._link_error = f"link to {self.port} lost: {detail}"
        self._open_at = time.monotonic() + self._backoff.next_delay()
        for track in self._tracks:
            self._set_down(track, DeviceState.DISCONNECTED, self._link_error)

    def _restart(self, track: _PdTrack, now: float) -> None:
        """Make libosdp start this PD afresh (it would otherwise park it for 300 s)."""
        # libosdp applies a disable in its next refresh; enable only after that.
        self._ctx.disable_pd(track.idx)
        self._ctx.refresh()
        self._ctx.enable_pd(track.idx)
        self._ctx.refresh()
        if not self._ctx.is_pd_enabled(track.idx):
            log.error("osdp reader did not re-enable", device_id=track.config.device_id)
        self._sniffer.answered_challenge.discard(track.config.address)
        self._sniffer.last_reply.pop(track.config.address, None)
        track.restart_at = None
        track.offline_seen = False
        track.online_notified = track.secure_notified = False
        del now

    def _update(self, track: _PdTrack, now: float, online: bool, secure: bool) -> None:
        cfg = track.config
        last = self._sniffer.last_reply.get(cfg.address)  # None: no reply since the restart
        answering = last is not None and now - last <= self.dead_after_s
        # libosdp's status bits lag a restart; its notifications do not, so both must agree.
        online = online and track.online_notified
        secure = secure and track.secure_notified
        ready = online and (secure or cfg.scbk is None) and answering
        if track.up and not ready:
            detail = "reader stopped answering" if online else "reader went offline"
            self._set_down(track, DeviceState.DISCONNECTED, detail, timed_out=online)
            track.restart_at = now + track.backoff.next_delay()
        elif ready and not track.up and track.restart_at is None:
            track.up = True
            track.refused = False
            track.reported_down = False
            track.backoff.reset()
            self._read_capabilities(track)
            self._set_state(track, DeviceState.CONNECTED, "secure" if secure else "plain")
        if track.offline_seen and track.restart_at is None:
            if cfg.address in self._sniffer.answered_challenge and not secure:
                if not track.refused:
                    track.refused = True
                    self._set_down(
                        track,
                        DeviceState.ERROR,
                        "secure channel refused: the reader's SCBK does not match ours",
                    )
                track.restart_at = now + self.refused_retry_s
            else:  # not answering (or libosdp's own restart at start-up): try again
                track.restart_at = now + track.backoff.next_delay()
            track.offline_seen = False
        if (
            not track.up
            and not track.refused
            and now - track.trying_since > self.dead_after_s
            and not track.reported_down
        ):
            track.reported_down = True
            detail = self._link_error if self._link.port is None else "reader not answering"
            self._set_state(track, DeviceState.DISCONNECTED, detail)
        if track.restart_at is not None and now >= track.restart_at and not track.up:
            self._restart(track, now)

    def _read_capabilities(self, track: _PdTrack) -> None:
        def has(cap: int) -> bool:
            try:
                level, _ = self._ctx.check_capability(track.idx, cap)
            except Exception:  # noqa: BLE001 (unknown capability: assume present)
                return True
            return bool(level)

        track.can_led = has(osdp_sys.CAP_READER_LED_CONTROL)
        track.can_buzzer = has(osdp_sys.CAP_READER_AUDIBLE_OUTPUT)
        track.can_output = has(osdp_sys.CAP_OUTPUT_CONTROL)

    def _set_down(
        self, track: _PdTrack, state: DeviceState, detail: str, *, timed_out: bool = False
    ) -> None:
        if track.up:
            track.trying_since = time.monotonic()
        track.up = False
        track.reported_down = True
        self._fail_track(track, state, detail, timed_out=timed_out)
        self._set_state(track, state, detail)

    def _set_state(self, track: _PdTrack, state: DeviceState, detail: str) -> None:
        reader = self._by_idx[track.idx]
        self._post(reader._state_changed, state, detail)

    def _error_for(self, track: _PdTrack, state: DeviceState, detail: str) -> DriverError:
        dev = track.config.device_id
        if state is DeviceState.ERROR:
            return DeviceRefused(detail, device_id=dev)
        return DeviceUnavailable(detail, device_id=dev)

    def _fail_track(
        self, track: _PdTrack, state: DeviceState, detail: str, *, timed_out: bool = False
    ) -> None:
        dev = track.config.device_id
        while track.pending:
            _, fut = track.pending.popleft()
            if timed_out:  # sent, and the reader never answered it
                self._resolve(fut, DeviceTimeout(detail, device_id=dev))
            else:
                self._resolve(fut, self._error_for(track, state, detail))
        with contextlib.suppress(Exception):
            self._ctx.flush_commands(track.idx)

    def _fail_pending(self, make: Any) -> None:
        for track in self._tracks:
            while track.pending:
                _, fut = track.pending.popleft()
                self._resolve(fut, make(track.config.device_id))
        while True:
            try:
                idx, _, queued = self._commands.get_nowait()
            except queue.Empty:
                return
            if queued is not None:
                self._resolve(queued, make(self._tracks[idx].config.device_id))

    def _drain_commands(self) -> None:
        while True:
            try:
                idx, command, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            track = self._tracks[idx]
            dev = track.config.device_id
            if command is None or fut is None:  # a command timed out on the loop side
                if track.up:
                    detail = "reader did not acknowledge a command"
                    self._set_down(track, DeviceState.DISCONNECTED, detail, timed_out=True)
                    track.restart_at = time.monotonic() + track.backoff.next_delay()
                continue
            if not track.up:
                state = DeviceState.ERROR if track.refused else DeviceState.DISCONNECTED
                detail = "secure channel refused" if track.refused else "reader not connected"
                self._resolve(fut, self._error_for(track, state, detail))
                continue
            kind = command["command"]
            if (kind == codec.Command.LED and not track.can_led) or (
                kind == codec.Command.BUZZER and not track.can_buzzer
            ):
                self._resolve(fut, None)  # the reader has no such indicator: nothing to show
                continue
            if kind == codec.Command.OUTPUT and not track.can_output:
                self._resolve(fut, DeviceConfigError("reader has no output", device_id=dev))
                continue
            if self._ctx.submit_command(idx, command):
                track.pending.append((kind, fut))
            else:
                self._resolve(fut, DeviceUnavailable("libosdp refused the command", device_id=dev))

    # libosdp callbacks: run on the bus thread, inside ctx.refresh(); must never raise.

    def _on_event(self, idx: int, event: dict[str, Any]) -> int:
        try:
            now_mono, now_wall = time.monotonic(), time.time()
            kind = event.get("event")
            reader = self._by_idx[idx]
            if kind == codec.Event.NOTIFICATION:
                track = self._tracks[idx]
                if event.get("type") == codec.Notification.PD_STATUS:
                    track.online_notified = bool(event.get("arg0"))
                    track.offline_seen = track.offline_seen or not event.get("arg0")
                elif event.get("type") == codec.Notification.SC_STATUS:
                    track.secure_notified = bool(event.get("arg0"))
            elif kind == codec.Event.CARDREAD:
                self._post(reader._card_read, event, now_mono, now_wall)
            elif kind == codec.Event.STATUS and event.get("type") == codec.StatusReport.INPUT:
                self._post(reader._inputs_changed, bytes(event.get("report", b"")), now_mono)
        except Exception:
            log.exception("osdp event handling failed", port=self.port)
        return 0

    def _on_completion(self, idx: int, command: dict[str, Any], status: int) -> None:
        try:
            track = self._tracks[idx]
            kind = command.get("command")
            while track.pending:
                expected, fut = track.pending.popleft()
                if expected != kind:  # flushed earlier without a completion
                    self._resolve(
                        fut, DeviceTimeout("command lost", device_id=track.config.device_id)
                    )
                    continue
                if status == codec.Completion.OK:
                    self._resolve(fut, None)
                else:
                    self._resolve(
                        fut,
                        DeviceUnavailable(
                            f"reader did not complete the command (status {status})",
                            device_id=track.config.device_id,
                        ),
                    )
                break
        except Exception:
            log.exception("osdp completion handling failed", port=self.port)


# --------------------------------------------------------------------------- one reader


class OsdpReader:
    """One OSDP reader: a ScanSource (cards), an Indicator (LED, buzzer) and a Gate (relay)."""

    def __init__(self, bus: OsdpBus, config: OsdpReaderConfig) -> None:
        self.bus = bus
        self.config = config
        self.device_id = config.device_id
        self.status = DeviceStatus(config.device_id)
        self._scans: asyncio.Queue[RawScan | None] = asyncio.Queue(maxsize=256)
        self._inputs = b""
        self._opened_mono: float | None = None
        self._passage: asyncio.Event = asyncio.Event()
        self._passage_mono = 0.0
        self._log = log.bind(device_id=config.device_id)
        self._own_bus = False
        self._held = False  # emergency release: output permanently on

    @classmethod
    def on_own_bus(
        cls,
        port: str,
        *,
        address: int = 101,
        scbk: bytes | None,
        on_change: StateListener | None = None,
        **bus_options: Any,
    ) -> OsdpReader:
        """A reader alone on its bus (the common wiring); start/aclose drive the bus too."""
        bus = OsdpBus(port, [OsdpReaderConfig(address=address, scbk=scbk)], **bus_options)
        reader = bus.reader(address)
        reader._own_bus = True
        if on_change is not None:
            reader.status.subscribe(on_change)
        return reader

    # ------------------------------------------------------------ Device

    @property
    def state(self) -> DeviceState:
        return self.status.state

    async def start(self) -> None:
        await self.bus._acquire()

    async def aclose(self) -> None:
        await self.bus._release()

    def _closed(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._scans.put_nowait(None)

    def _state_changed(self, state: DeviceState, detail: str) -> None:
        self.status.set(state, detail)

    def _require_up(self) -> None:
        if self.state is DeviceState.ERROR:
            raise DeviceRefused(self.status.last_error or "refused", device_id=self.device_id)
        if self.state is not DeviceState.CONNECTED:
            raise DeviceUnavailable(f"reader is {self.state.value}", device_id=self.device_id)

    async def _command(self, command: dict[str, Any]) -> None:
        self._require_up()
        fut = self.bus._submit(self.bus._by_idx.index(self), command)
        try:
            await asyncio.wait_for(fut, self.bus.command_timeout_s)
        except TimeoutError as exc:
            # Not acknowledged in time: treat the reader as down now (the bus thread restarts
            # its session), so nobody mistakes a stalled reader for a working one.
            detail = "reader did not acknowledge a command"
            self.status.set(DeviceState.DISCONNECTED, detail)
            self.bus._command_timed_out(self.bus._by_idx.index(self))
            raise DeviceTimeout(
                "command not acknowledged in time", device_id=self.device_id
            ) from exc

    # ------------------------------------------------------------ ScanSource

    async def scans(self) -> AsyncIterator[RawScan]:
        while True:
            scan = await self._scans.get()
            if scan is None:
                return
            yield scan

    def _card_read(self, event: dict[str, Any], mono: float, wall: float) -> None:
        result = codec.card_read_text(
            event.get("data", b""),
            card_format=event.get("format"),
            bit_length=event.get("length"),
        )
        if isinstance(result, codec.CardDropped):
            if result.reason is codec.CardDrop.BAD_PARITY:
                self._log.warning("wiegand read with bad parity dropped", bits=result.length)
            else:
                self._log.warning("card read with impossible length dropped", length=result.length)
            return
        scan = RawScan(
            device_id=self.device_id,
            kind=ScanKind.CARD,
            text=result.text,
            symbology=result.symbology,
            received_mono=mono,
            received_at=wall,
        )
        if self._scans.full():
            self._scans.get_nowait()
            self._log.warning("scan queue full; oldest card read dropped")
        self._scans.put_nowait(scan)

    # ------------------------------------------------------------ Indicator

    async def show(self, signal: Signal) -> None:
        cfg = self.config
        commands = signal_commands(
            signal, reader_no=cfg.reader_no, led_number=cfg.led_number, device_id=self.device_id
        )
        try:
            for command in commands:
                await self._command(command)
        except (DeviceUnavailable, DeviceTimeout, DeviceRefused) as exc:
            self._log.debug("signal not shown", error=str(exc))

    # ------------------------------------------------------------ Gate

    async def hold_open(self) -> None:
        """Emergency release: the output permanently on (aborting a pulse) until
        release_hold(). Not re-sent after a reconnect by itself: the gateway re-applies it."""
        self._held = True
        with _fields_checked(self.device_id):
            command = codec.output_off_command(self.config.output_no)
        command["control_code"] = codec.OutputControl.PERMANENT_ON.value
        await self._command(command)

    async def release_hold(self) -> None:
        self._held = False
        await self.keep_shut()

    async def open(self, *, pulse_ms: int = 500) -> None:
        if self._held:
            return
        with _fields_checked(self.device_id):
            command = codec.output_pulse_command(self.config.output_no, pulse_ms)
        self._passage.clear()
        self._opened_mono = time.monotonic()
        await self._command(command)

    async def keep_shut(self) -> None:
        self._opened_mono = None
        if self._held:
            return
        await self._command(codec.output_off_command(self.config.output_no))

    async def wait_passage(self, *, timeout_s: float) -> PassageReport:
        opened = self._opened_mono if self._opened_mono is not None else time.monotonic()
        outcome = PassageOutcome.NOT_PASSED
        if self.config.passage_input is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._passage.wait(), timeout_s)
                outcome = PassageOutcome.PASSED
        else:
            await asyncio.sleep(timeout_s)
        end = self._passage_mono if outcome is PassageOutcome.PASSED else time.monotonic()
        self._opened_mono = None
        self._passage.clear()
        return PassageReport(
            device_id=self.device_id, outcome=outcome, elapsed_s=max(0.0, end - opened)
        )

    def _inputs_changed(self, report: bytes, mono: float) -> None:
        previous, self._inputs = self._inputs, report
        n = self.config.passage_input
        if n is None or n >= len(report):
            return
        was_active = n < len(previous) and previous[n] != 0
        if report[n] and not was_active and self._opened_mono is not None:
            self._passage_mono = mono
            self._passage.set()
