"""TCP line QR scanner, both ways round, framed by protocol.framing.

- LISTEN: the scanner is a TCP client (many network scanners and serial-to-Ethernet boxes in
  "client" mode connect out to a host). We listen (loopback by default) and frame each
  connection separately; one or more scanners may connect. The device is CONNECTED while at
  least one scanner is connected and DISCONNECTED when the last one leaves; the scanner
  reconnects by itself, we only keep listening.
- CONNECT: the scanner is a TCP server ("server" mode); we connect to it and reconnect with
  protocol.backoff.Backoff after it restarts or the cable is pulled.

Both report their state through a DeviceStatus (one "device down", one "device back" per
outage) and never log a scanned text.

Slow or hostile clients (LISTEN): a connection that sends nothing for ``idle_timeout_s`` is
dropped (a real scanner reconnects by itself); when ``max_clients`` are connected, a new one
evicts the connection idle longest, so idle connections cannot lock the real scanner out;
with ``allowed_peers`` set, a connection from any other address is closed at once (logged
once a minute per address, with a count).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import time
from dataclasses import dataclass, field

import structlog

from suishen.drivers.base import (
    DeviceConfigError,
    DeviceUnavailable,
    StateListener,
)
from suishen.drivers.serial_scanner import DiscardListener, LineScanner, LineScanProtocol
from suishen.protocol.device_state import DeviceState
from suishen.protocol.framing import FramingConfig

log = structlog.get_logger("suishen.drivers.scanner")


class TcpMode(enum.StrEnum):
    LISTEN = "listen"  # the scanner connects to us
    CONNECT = "connect"  # we connect to the scanner


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpScannerConfig:
    """One TCP line scanner. Every field is a setting."""

    device_id: str  # the lane's name for this scanner
    mode: TcpMode
    host: str = "127.0.0.1"  # LISTEN: address to bind; CONNECT: the scanner's address
    port: int = 0  # LISTEN: 0 picks a free port (see TcpScanner.port); CONNECT: scanner's port
    framing: FramingConfig = field(default_factory=FramingConfig)
    max_clients: int = 8  # LISTEN: connected at once; a new one evicts the longest idle
    idle_timeout_s: float = 600.0  # LISTEN: drop a connection silent this long (0: never)
    allowed_peers: tuple[str, ...] = ()  # LISTEN: addresses / CIDRs allowed (empty: any)
    connect_timeout_s: float = 3.0  # CONNECT: one attempt's deadline
    reconnect_initial_s: float = 0.05  # CONNECT: first reconnect delay (doubled, with jitter)
    reconnect_max_s: float = 5.0  # CONNECT: longest reconnect delay

    def __post_init__(self) -> None:
        if not self.device_id:
            raise DeviceConfigError("device_id must not be empty", device_id="?")
        if not 0 <= self.port <= 65535 or (self.mode is TcpMode.CONNECT and self.port == 0):
            raise DeviceConfigError(f"bad port {self.port}", device_id=self.device_id)
        if self.max_clients < 1:
            raise DeviceConfigError("max_clients must be at least 1", device_id=self.device_id)
        if self.idle_timeout_s < 0:
            raise DeviceConfigError("idle_timeout_s must be >= 0", device_id=self.device_id)
        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise DeviceConfigError(
                    f"allowed_peers: {peer!r} is not an address or CIDR network",
                    device_id=self.device_id,
                ) from None

    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.allowed_peers)


REFUSAL_LOG_S = 60.0  # a refused address is logged at most once a minute (with a count)
_REFUSAL_MEMORY = 256  # refused addresses remembered for that (then forgotten, all at once)


class TcpScanner(LineScanner):
    """ScanSource over TCP lines, in LISTEN or CONNECT mode."""

    def __init__(
        self,
        config: TcpScannerConfig,
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
        self._links: set[LineScanProtocol] = set()
        self._server: asyncio.Server | None = None
        self._allowed = config.allowed_networks()
        self._refused: dict[str, tuple[float, int]] = {}  # address -> (last logged, count)
        self._sweeper: asyncio.Task[None] | None = None
        self.port = config.port
        self.evicted = 0  # LISTEN: connections dropped (idle, or evicted when full)
        self.refused = 0  # LISTEN: connections refused (not an allowed peer)

    async def start(self) -> None:
        """LISTEN: bind now (so `port` is known), then wait for scanners. CONNECT: start the
        connect loop in the background."""
        if self.config.mode is TcpMode.LISTEN:
            if self._server is None:
                await self._listen()
            if self._sweeper is None and self.config.idle_timeout_s > 0:
                self._sweeper = asyncio.create_task(
                    self._sweep_idle(), name=f"tcp-scanner-idle:{self.device_id}"
                )
        elif self._task is None:
            self._task = asyncio.create_task(
                self._connect_loop(), name=f"tcp-scanner:{self.device_id}"
            )

    async def aclose(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._scans.close()

    @property
    def connected_peers(self) -> int:
        return len(self._links)

    # LISTEN ---------------------------------------------------------------------------------

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._accept, self.config.host, self.config.port, reuse_address=True
            )
        except OSError as exc:
            self.status.set(DeviceState.ERROR, detail=f"cannot listen: {exc}")
            raise DeviceUnavailable(
                f"cannot listen on {self.config.host}:{self.config.port}", device_id=self.device_id
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self._log.info("listening for scanners", host=self.config.host, port=self.port)

    def _accept(self) -> asyncio.Protocol:
        return _ServerLink(self)

    def _peer_up(self, link: LineScanProtocol) -> None:
        if self._allowed and not self._allowed_peer(link.peer_host):
            self._refuse(link)
            return
        oldest = None
        if len(self._links) >= self.config.max_clients:
            oldest = min(self._links, key=lambda other: other.last_active)
        self._links.add(link)
        if oldest is not None:
            self._drop(oldest, "evicted: connections full", limit=self.config.max_clients)
        self.status.set(DeviceState.CONNECTED)

    def _allowed_peer(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._allowed)

    def _refuse(self, link: LineScanProtocol) -> None:
        """Close a connection from an address not allowed; log it once a minute per address."""
        link.close()
        self.refused += 1
        host = link.peer_host
        now = time.monotonic()
        logged, count = self._refused.get(host, (-REFUSAL_LOG_S, 0))
        if now - logged < REFUSAL_LOG_S:
            self._refused[host] = (logged, count + 1)
            return
        if len(self._refused) >= _REFUSAL_MEMORY:
            self._refused.clear()
        self._refused[host] = (now, 0)
        self._log.warning("scanner connection refused: peer not allowed", peer=host, since=count)

    def _drop(self, link: LineScanProtocol, why: str, **fields: object) -> None:
        """Close a connection we no longer keep (it stays counted as up until it is gone)."""
        self._links.discard(link)
        self.evicted += 1
        self._log.info("scanner connection dropped", why=why, peer=link.peer_host, **fields)
        link.close()
        if not self._links and not self._closing:
            self.status.set(DeviceState.DISCONNECTED, detail=why)

    async def _sweep_idle(self) -> None:
        """Drop connections that sent nothing for idle_timeout_s."""
        timeout = self.config.idle_timeout_s
        interval = min(max(timeout / 4, 0.01), 5.0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for link in [ln for ln in self._links if now - ln.last_active >= timeout]:
                self._drop(link, "idle", idle_s=round(now - link.last_active, 1))

    def _peer_down(self, link: LineScanProtocol, exc: Exception | None) -> None:
        if link not in self._links:
            return
        self._links.discard(link)
        if not self._links and not self._closing:
            self.status.set(
                DeviceState.DISCONNECTED, detail=str(exc) if exc else "scanner disconnected"
            )

    # CONNECT --------------------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.config.host, self.config.port
        while not self._closing:
            try:
                async with asyncio.timeout(self.config.connect_timeout_s):
                    _transport, link = await loop.create_connection(self._make_link, host, port)
            except (OSError, TimeoutError) as exc:
                self.status.set(
                    DeviceState.DISCONNECTED, detail=f"{type(exc).__name__}: {exc}"[:200]
                )
                await asyncio.sleep(self._backoff.next_delay())
                continue
            assert isinstance(link, LineScanProtocol)
            self._links.add(link)
            self._backoff.reset()
            self.status.set(DeviceState.CONNECTED)
            try:
                lost = await asyncio.shield(link.closed)
            except asyncio.CancelledError:
                link.close()
                raise
            finally:
                self._links.discard(link)
            if self._stopping():
                return
            self.status.set(
                DeviceState.DISCONNECTED,
                detail=str(lost) if lost else "scanner closed the connection",
            )
            await asyncio.sleep(self._backoff.next_delay())

    def _make_link(self) -> LineScanProtocol:
        return LineScanProtocol(
            device_id=self.device_id,
            framing=self.config.framing,
            on_scan=self._scans.put,
            on_discard=self._on_discard,
        )


class _ServerLink(LineScanProtocol):
    """A LineScanProtocol for one accepted scanner connection (LISTEN mode)."""

    def __init__(self, owner: TcpScanner) -> None:
        super().__init__(
            device_id=owner.device_id,
            framing=owner.config.framing,
            on_scan=owner._scans.put,
            on_discard=owner._on_discard,
        )
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.peer_host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._owner._peer_up(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._owner._peer_down(self, exc)
