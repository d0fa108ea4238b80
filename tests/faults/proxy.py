"""A fault-injecting loopback TCP proxy (DESIGN §9 item 12; asyncpg's tests use one).

``FaultProxy(target_port)`` listens on 127.0.0.1 (a free port unless one is given) and
forwards every connection to 127.0.0.1:target_port, byte for byte in both directions. It
knows nothing of TLS or HTTP: the mutual-TLS session between a gateway and the hub passes
through untouched, so a fault here is what a flaky network does to the real stack.

Controls (call them from the event loop the proxy runs on):

- ``drop()``: close every open connection now, both sides; ``reset=True`` (the default)
  closes with SO_LINGER 0, so the peers see a TCP RST ("connection reset"), not a clean FIN;
- ``refuse()``: drop everything and stop listening, so new connections are refused
  (ECONNREFUSED, as when the hub's host is up but the hub is not) until ``resume()``;
- ``stall()``: stop forwarding in both directions but keep every socket open; bytes sit in
  kernel buffers and the peers see a silent, hung connection (new connections are accepted
  and held the same way) until ``resume()``.  ``stall(up=False)`` holds only what the target
  sends back: a request reaches the hub and is acted on, but its answer never arrives;
- ``stall_after(nbytes, up=..., down=...)``: arm a trap: once one connection has carried
  ``nbytes`` more client -> target, stall at once (inside the forwarding loop, no polling
  delay); the returned event is set when it trips.  Counting per connection keeps the TLS
  handshakes of several new connections (a few KB together) from tripping it.  E.g. the hub's
  link to PostgreSQL with ``down=False``: the COPY of a batch goes through, the INSERT and
  COMMIT that follow never reach the server; or a gateway's link with ``up=False``: a large
  upload reaches the hub, the hub's answer is held;
- ``resume()``: listen again (same port) and forward again, flushing what the stall held
  (and disarming a trap).

Counters (``accepted``, ``active``, ``bytes_up``, ``bytes_down``, ``dropped``) let a test
check that a fault really hit traffic.  ``async with FaultProxy(port) as proxy:`` starts and
closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType

HOST = "127.0.0.1"
CHUNK = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


@dataclass(slots=True, eq=False)
class _Link:
    """One proxied connection: the client's streams and the upstream's."""

    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_writer: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    bytes_up: int = 0

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client_writer, self.upstream_writer) if w is not None]


@dataclass(slots=True, eq=False)
class _Trap:
    nbytes: int  # stall once one connection carried this many more bytes up
    up: bool
    down: bool
    base: dict[_Link, int]  # bytes_up of the connections open when it was armed
    tripped: asyncio.Event = field(default_factory=asyncio.Event)

    def reached(self, link: _Link) -> bool:
        return link.bytes_up - self.base.get(link, 0) >= self.nbytes


class FaultProxy:
    """127.0.0.1:port -> 127.0.0.1:target_port, with drop / refuse / stall / resume."""

    def __init__(self, target_port: int, *, port: int = 0, target_host: str = HOST) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._port = port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._up = asyncio.Event()  # set: client -> target flows
        self._down = asyncio.Event()  # set: target -> client flows
        self._up.set()
        self._down.set()
        self._closed = False
        self.accepted = 0
        self.dropped = 0
        self.bytes_up = 0  # client -> target
        self.bytes_down = 0  # target -> client
        self._trap: _Trap | None = None

    # ----- lifecycle

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def stalled(self) -> bool:
        return not (self._up.is_set() and self._down.is_set())

    @property
    def active(self) -> int:
        return len(self._links)

    async def start(self) -> FaultProxy:
        await self._listen()
        return self

    async def _listen(self) -> None:
        if self._server is not None:
            return
        # reuse_address (asyncio's default on POSIX) lets refuse()/resume() rebind the port
        # while closed connections linger in TIME_WAIT.
        self._server = await asyncio.start_server(self._serve, HOST, self._port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        self._closed = True
        self._up.set()
        self._down.set()
        await self._unlisten(reset=False)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----- faults

    async def drop(self, *, reset: bool = True) -> int:
        """Close every open connection now; returns how many there were."""
        return await self._drop_all(reset=reset)

    async def refuse(self) -> None:
        """Drop every connection and stop listening until resume()."""
        await self._unlisten(reset=True)

    def stall(self, *, up: bool = True, down: bool = True) -> None:
        """Stop forwarding client -> target (``up``) and/or target -> client (``down``), on
        every connection, new ones too; keep the sockets open."""
        if up:
            self._up.clear()
        if down:
            self._down.clear()

    def stall_after(self, nbytes: int, *, up: bool = True, down: bool = True) -> asyncio.Event:
        """stall(up=, down=) once one connection carried ``nbytes`` more client -> target;
        the event is set then."""
        base = {link: link.bytes_up for link in self._links}
        trap = _Trap(nbytes=nbytes, up=up, down=down, base=base)
        self._trap = trap
        return trap.tripped

    async def resume(self, *, disarm: bool = True) -> None:
        """Listen and forward again (and forget an armed trap, unless ``disarm=False``)."""
        if self._closed:
            raise RuntimeError("the proxy is closed")
        if disarm:
            self._trap = None
        await self._listen()
        self._up.set()
        self._down.set()

    async def _unlisten(self, *, reset: bool) -> None:
        """Stop listening and drop every connection (Server.wait_closed waits for them)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._drop_all(reset=reset)
        if server is not None:
            await server.wait_closed()

    async def _drop_all(self, *, reset: bool) -> int:
        links = list(self._links)
        for link in links:
            self._close_link(link, reset=reset)
        for link in links:
            for task in link.tasks:
                task.cancel()
        for link in links:
            await asyncio.gather(*link.tasks, return_exceptions=True)
        self.dropped += len(links)
        return len(links)

    def _close_link(self, link: _Link, *, reset: bool) -> None:
        self._links.discard(link)
        for writer in link.writers():
            sock = writer.get_extra_info("socket")
            if reset and sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            writer.transport.abort() if reset else writer.close()

    # ----- forwarding

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client_reader=reader, client_writer=writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        link.tasks.append(task)
        try:
            await self._up.wait()  # a stalled proxy holds new connections unanswered
            connect = asyncio.ensure_future(
                asyncio.open_connection(self.target_host, self.target_port)
            )
            try:
                # Shielded: a drop() that cancels this handler mid-connect must not orphan the
                # upstream transport (it would be garbage-collected unclosed: ResourceWarning).
                up_reader, up_writer = await asyncio.shield(connect)
            except asyncio.CancelledError:
                connect.add_done_callback(_close_orphan)
                raise
            except OSError:
                # The target is down: the client sees its connection reset, as through a
                # real middlebox whose backend refused.
                self._close_link(link, reset=True)
                return
            link.upstream_writer = up_writer
            if link not in self._links:  # dropped while connecting
                self._close_link(link, reset=True)
                return
            pumps = [
                asyncio.create_task(self._pump(link, reader, up_writer, up=True)),
                asyncio.create_task(self._pump(link, up_reader, writer, up=False)),
            ]
            link.tasks.extend(pumps)
            # Either side ending ends the link (half-close is not needed by HTTP/TLS here).
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            self._close_link(link, reset=False)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            self._close_link(link, reset=True)
            # Cancelled by drop()/aclose(): the handler ends quietly; asyncio's server
            # would otherwise log the cancellation of its client_connected_cb task.
        finally:
            self._links.discard(link)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        up: bool,
    ) -> None:
        flowing = self._up if up else self._down
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                await flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    return
                await flowing.wait()  # stalled while this chunk was in hand: hold it
                writer.write(data)
                await writer.drain()
                if up:
                    self.bytes_up += len(data)
                    link.bytes_up += len(data)
                    trap = self._trap
                    if trap is not None and trap.reached(link):
                        self._trap = None
                        self.stall(up=trap.up, down=trap.down)
                        trap.tripped.set()
                else:
                    self.bytes_down += len(data)


def _close_orphan(
    connect: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    """Close an upstream connection that completed after its handler was cancelled."""
    if connect.cancelled() or connect.exception() is not None:
        return
    _reader, writer = connect.result()
    writer.transport.abort()
