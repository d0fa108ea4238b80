"""Slow and greedy clients on the gateway listener (DESIGN §6: header and body read timeouts,
a per-gateway connection cap).

aiohttp has no header or body read timeout of its own; what it has, and how it is used here:

- the TLS handshake: ``ssl_handshake_timeout`` of ``loop.create_server`` (:class:`GuardedSite`),
  set to ``header_timeout_s``;
- the request head: aiohttp's ``keepalive_timeout`` (3.14) is armed when a connection is made
  and after every response, and when it fires while the connection still waits for a complete
  request head it closes the connection, however many bytes trickled in meanwhile: so it is
  both the idle keep-alive limit and the header timeout (a slowloris sending its headers byte
  by byte is cut off ``header_timeout_s`` after connecting).  A test holds aiohttp to it;
- the body: aiohttp's ``client_max_size`` bounds its size (413); its time is bounded by
  ``read_body`` in the gateway middleware, which reads the whole body within
  ``body_timeout_s`` (else 408 and the connection closed) before any handler runs;
- connections per gateway: :class:`ConnectionGuard` counts, per gateway named by the verified
  client certificate, the connections that completed their handshake; one over
  ``max_connections_per_gateway`` gets ``503`` (Retry-After) and is closed at once.  aiohttp
  offers no hook between the handshake and the first request other than its server's
  ``connection_made`` / ``connection_lost`` (called by every connection's protocol), so the
  guard wraps those two on the server instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any, Final

import structlog
from aiohttp import web

from suishen.sync.pki import PeerIdentityError, gateway_id_from_peercert

BUSY_RESPONSE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Type: application/json\r\nContent-Length: 61\r\n\r\n"
    b'{"error": "too many connections from this gateway", "row": 0}'
)

log = structlog.get_logger("suishen.central.listener")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ListenerLimits:
    """How long a client may take and how many connections a gateway may hold."""

    header_timeout_s: float = 20.0
    body_timeout_s: float = 60.0
    max_connections_per_gateway: int = 16

    def __post_init__(self) -> None:
        if not (self.header_timeout_s > 0 and self.body_timeout_s > 0):
            raise ValueError("timeouts must be positive")
        if self.max_connections_per_gateway < 1:
            raise ValueError("max_connections_per_gateway must be >= 1")


class ConnectionGuard:
    """Counts each gateway's open connections; refuses those over the cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()
        self._owner: dict[int, str] = {}
        self.refused = 0

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._admit(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            gateway_id = self._owner.pop(id(handler), None)
            if gateway_id is not None:
                self.open[gateway_id] -= 1
                if self.open[gateway_id] <= 0:
                    del self.open[gateway_id]
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _admit(self, handler: Any, transport: asyncio.Transport) -> None:
        try:
            gateway_id = gateway_id_from_peercert(transport.get_extra_info("peercert"))
        except PeerIdentityError:
            return  # the middleware answers 403
        if self.open[gateway_id] >= self.limit:
            self.refused += 1
            log.warning("gateway_connection_refused", gateway_id=gateway_id, limit=self.limit)
            transport.write(BUSY_RESPONSE)
            handler.force_close()
            return
        self.open[gateway_id] += 1
        self._owner[id(handler)] = gateway_id


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` with a TLS handshake timeout (aiohttp's site does not pass one)."""

    def __init__(self, *args: Any, ssl_handshake_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_timeout = ssl_handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers with the runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout_s", float)


class BodyError(Exception):
    """The request body could not be read whole: ``status`` says how to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: web.Request, max_bytes: int) -> None:
    """Read the request's body now (aiohttp keeps it for ``request.read()``), within the
    app's body timeout.  Raises BodyError: 408 (too slow), 413 (a chunked body over
    ``max_bytes``).  A body whose Content-Length is over the limit is not read: the handler
    answers 413 from the header."""
    if not request.can_read_body:
        return
    if request.content_length is not None and request.content_length > max_bytes:
        return
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT]):
            await request.read()
    except TimeoutError:
        raise BodyError(408, "the request body did not arrive in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise BodyError(413, f"body is over {max_bytes} bytes") from None
