"""Serial line QR scanner: pyserial + pyserial-asyncio-fast, framed by protocol.framing.

A ScanSource (and, with a vendor command set configured, an Indicator) for scanners on a
serial port or anything pyserial opens by URL (serial_for_url semantics): ``/dev/ttyUSB0``,
a pty path or a stable symlink to one (``/dev/serial/by-id/...``), ``socket://127.0.0.1:7000``
(an RS-232-to-Ethernet converter in raw TCP mode). pyserial-asyncio-fast reads the port with
loop.add_reader, which also works under uvloop (its stream helpers hang on a pty, DESIGN §8).

The driver reconnects by itself with protocol.backoff.Backoff when the port disappears (cable
pull, USB re-enumeration) or errors, and reports its state through a DeviceStatus (one
"device down", one "device back" per outage).

LineScanProtocol (the asyncio.Protocol that frames one link into RawScans, with the idle-
flush timer) is shared with the TCP line scanner (drivers.tcp_scanner).

Scanned texts are personal data: they are never logged; logs carry lengths and symbology.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import serial
import serial_asyncio_fast
import structlog

from suishen.drivers.base import (
    Colour,
    DeviceConfigError,
    DeviceStatus,
    RawScan,
    ScanKind,
    Signal,
    StateListener,
    reconnect_backoff,
)
from suishen.protocol.device_state import DeviceState
from suishen.protocol.framing import (
    NEED_DATA,
    Discarded,
    DiscardReason,
    FramedScan,
    FramingConfig,
    ScanFramer,
)
from suishen.protocol.scanner_commands import Vendor, commands_for_verdict

log = structlog.get_logger("suishen.drivers.scanner")

DiscardListener = Callable[[Discarded], None]
SCAN_QUEUE_SIZE = 1024  # scans waiting for the lane; beyond this new ones are dropped (journalled)

PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
BYTESIZES = {5: serial.FIVEBITS, 6: serial.SIXBITS, 7: serial.SEVENBITS, 8: serial.EIGHTBITS}
STOPBITS = {1.0: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2.0: serial.STOPBITS_TWO}


# --------------------------------------------------------------------------- shared pieces


class ScanQueue:
    """The scans a driver has read, waiting for its one consumer (the lane)."""

    _CLOSED: Any = object()

    def __init__(
        self,
        device_id: str,
        maxsize: int = SCAN_QUEUE_SIZE,
        *,
        on_drop: DiscardListener | None = None,
    ) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._log = log.bind(device_id=device_id)
        self._on_drop = on_drop
        self.dropped = 0
        self._closed = False

    def put(self, scan: RawScan) -> None:
        """Queue a scan for the lane; when the queue is full the scan is dropped and reported
        to `on_drop` as a DROPPED discard (the lane journals it, folded with its neighbours)."""
        if self._closed:
            return
        try:
            self._queue.put_nowait(scan)
        except asyncio.QueueFull:
            self.dropped += 1
            self._log.debug("scan dropped: lane not keeping up", dropped=self.dropped)
            if self._on_drop is not None:
                size = max(1, len(scan.text.encode("utf-8", "replace")))
                self._on_drop(Discarded(reason=DiscardReason.DROPPED, byte_count=size))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(self._CLOSED)

    async def __aiter__(self) -> AsyncIterator[RawScan]:
        while True:
            item = await self._queue.get()
            if item is self._CLOSED:
                self._queue.put_nowait(item)  # later iterators end too
                return
            yield item


class LineScanProtocol(asyncio.Protocol):
    """Frames one byte link (a serial port, a TCP connection) into RawScans."""

    def __init__(
        self,
        *,
        device_id: str,
        framing: FramingConfig,
        on_scan: Callable[[RawScan], None],
        on_discard: DiscardListener | None = None,
        peer: str = "",
    ) -> None:
        self.device_id = device_id
        self.framer = ScanFramer(framing)
        self._on_scan = on_scan
        self._on_discard = on_discard
        self._log = (
            log.bind(device_id=device_id, peer=peer) if peer else log.bind(device_id=device_id)
        )
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_rx = (0.0, 0.0)  # (monotonic, wall) of the last bytes received
        self.transport: asyncio.BaseTransport | None = None
        self.peer_host = ""  # the remote address, for a TCP connection
        self.connected_mono = time.monotonic()
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.connected_mono = time.monotonic()

    @property
    def last_active(self) -> float:
        """time.monotonic() of the last bytes received (or of the connection, before any)."""
        return max(self.connected_mono, self._last_rx[0])

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._last_rx = (now, time.time())
        for event in self.framer.receive(data, now):
            self._emit(event)
        self._arm_idle_timer()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_idle_timer()
        dropped = self.framer.reset()
        if dropped is not None:
            self._emit(dropped)
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(exc)

    # writing (vendor commands) ----------------------------------------------------------

    def write(self, data: bytes) -> bool:
        """Write to the link if it is up; False when it is not."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(data)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # internals ----------------------------------------------------------------------------

    def _emit(self, event: FramedScan | Discarded) -> None:
        if isinstance(event, Discarded):
            # Debug only: the lane logs (and journals) discards folded, so a flood of garbage
            # is not a flood of log lines.
            self._log.debug("scan discarded", reason=event.reason.value, bytes=event.byte_count)
            if self._on_discard is not None:
                self._on_discard(event)
            return
        mono, wall = self._last_rx
        scan = RawScan(
            device_id=self.device_id,
            kind=ScanKind.QR,
            text=event.text,
            symbology=event.symbology,
            received_mono=mono,
            received_at=wall,
        )
        self._log.debug(
            "scan framed",
            length=len(event.text),
            symbology=event.symbology,
            encoding=event.encoding,
            idle_flushed=event.idle_flushed,
        )
        self._on_scan(scan)

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        deadline = self.framer.idle_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(max(0.0, deadline - time.monotonic()), self._on_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle(self) -> None:
        self._idle_timer = None
        now = time.monotonic()
        while (event := self.framer.next_event(now)) is not NEED_DATA:
            self._emit(event)
        self._arm_idle_timer()


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialScannerConfig:
    """One serial scanner. Every field is a setting."""

    device_id: str  # the lane's name for this scanner
    url: str  # /dev/ttyUSB0, a pty path or symlink, socket://host:port, loop://
    baudrate: int = 9600
    bytesize: int = 8  # 5, 6, 7 or 8
    parity: str = "N"  # N, E or O
    stopbits: float = 1  # 1, 1.5 or 2
    framing: FramingConfig = field(default_factory=FramingConfig)
    vendor: Vendor | None = None  # command set for indicator/trigger; None = plain scanner
    reconnect_initial_s: float = 0.05  # first reconnect delay (then doubled, with jitter)
    reconnect_max_s: float = 5.0  # longest reconnect delay

    def __post_init__(self) -> None:
        if not self.device_id:
            raise DeviceConfigError("device_id must not be empty", device_id="?")
        if self.parity.upper() not in PARITIES:
            raise DeviceConfigError(
                f"parity must be N, E or O: {self.parity!r}", device_id=self.device_id
            )
        if self.bytesize not in BYTESIZES:
            raise DeviceConfigError(
                f"bytesize must be 5-8: {self.bytesize}", device_id=self.device_id
            )
        if float(self.stopbits) not in STOPBITS:
            raise DeviceConfigError(
                f"stopbits must be 1, 1.5 or 2: {self.stopbits}", device_id=self.device_id
            )
        if self.baudrate <= 0:
            raise DeviceConfigError(
                f"baudrate must be positive: {self.baudrate}", device_id=self.device_id
            )

    def serial_kwargs(self) -> dict[str, Any]:
        return {
            "baudrate": self.baudrate,
            "bytesize": BYTESIZES[self.bytesize],
            "parity": PARITIES[self.parity.upper()],
            "stopbits": STOPBITS[float(self.stopbits)],
        }


class LineScanner:
    """What the serial and the TCP line scanners share: status, reconnect backoff, the queue
    of framed scans, and the discard listener."""

    def __init__(
        self,
        *,
        device_id: str,
        reconnect_initial_s: float,
        reconnect_max_s: float,
        on_state: StateListener | None,
        on_discard: DiscardListener | None,
    ) -> None:
        self.device_id = device_id
        self.status = DeviceStatus(device_id, on_change=on_state)
        self._on_discard = on_discard
        self._scans = ScanQueue(device_id, on_drop=on_discard)
        self._backoff = reconnect_backoff(initial_s=reconnect_initial_s, cap_s=reconnect_max_s)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._log = log.bind(device_id=device_id)

    @property
    def state(self) -> DeviceState:
        return self.status.state

    def _stopping(self) -> bool:
        return self._closing  # a call, so type checkers do not narrow it across awaits

    def scans(self) -> AsyncIterator[RawScan]:
        return aiter(self._scans)


class SerialScanner(LineScanner):
    """ScanSource over a serial port (by URL); an Indicator too when a vendor is configured."""

    def __init__(
        self,
        config: SerialScannerConfig,
        *,
        on_state: StateListener | None = None,
        on_discard: DiscardListener | None = None,
    ) -> None:
        super().__init__(
            device_id=config.device_id,
            reconnect_initial_s=config.reconnect_initial_s,
            reconnect_max_s=config.reconnect_max_s,
            on_state=on_state,
            on_discard=on_discard,
        )
        self.config = config
        self._link: LineScanProtocol | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"serial-scanner:{self.device_id}")

    async def aclose(self) -> None:
        self._closing = True
        if self._link is not None:
            self._link.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._scans.close()

    async def show(self, signal: Signal) -> None:
        """Best effort: the vendor's own verdict indication (nothing without a vendor)."""
        if self.config.vendor is None or self._link is None:
            return
        allowed = signal.colour is Colour.GREEN
        for payload in commands_for_verdict(self.config.vendor, allowed=allowed):
            self._link.write(payload)

    async def send_command(self, payload: bytes) -> bool:
        """Write a vendor command (see protocol.scanner_commands); False if not connected."""
        return self._link is not None and self._link.write(payload)

    # internals ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                _transport, link = await serial_asyncio_fast.create_serial_connection(
                    loop, self._make_protocol, self.config.url, **self.config.serial_kwargs()
                )
            except (serial.SerialException, OSError) as exc:
                # The port is not there (unplugged, not enumerated yet) or not answering.
                self.status.set(DeviceState.DISCONNECTED, detail=_describe(exc))
                await asyncio.sleep(self._backoff.next_delay())
                continue
            except (termios.error, ValueError) as exc:
                # The port is there but refuses these line settings (e.g. parity on a pty).
                self.status.set(DeviceState.ERROR, detail=_describe(exc))
                await asyncio.sleep(self._backoff.next_delay())
                continue
            assert isinstance(link, LineScanProtocol)
            self._link = link
            self._backoff.reset()
            self.status.set(DeviceState.CONNECTED)
            try:
                lost = await asyncio.shield(link.closed)
            except asyncio.CancelledError:
                link.close()
                raise
            finally:
                self._link = None
            if self._stopping():
                return
            self.status.set(
                DeviceState.DISCONNECTED, detail=_describe(lost) if lost else "port closed"
            )
            await asyncio.sleep(self._backoff.next_delay())

    def _make_protocol(self) -> LineScanProtocol:
        return LineScanProtocol(
            device_id=self.device_id,
            framing=self.config.framing,
            on_scan=self._scans.put,
            on_discard=self._on_discard,
        )


def _describe(exc: BaseException) -> str:
    """A short, data-free description of a port error for the state detail."""
    return f"{type(exc).__name__}: {exc}"[:200]
