"""Who may connect: each gateway's pinned certificate and enabled flag, cached (DESIGN §6).

A request is served only when the gateway is registered, enabled, and its verified peer
certificate has exactly the pinned fingerprint (the changes: central/store/gateways.py).

"At once": a trigger (deploy/sql/0004_gateway_certs.sql) notifies ``suishen_gateways`` with the
gateway_id when its pin, enabled flag or site changes.  :class:`GatewayRegistry` caches each
gateway's row (one query per gateway, not per request) and drops the entry when notified; the
cache is used only while its LISTEN connection is up (after a loss it is cleared, and requests
query the database until LISTEN is back), and an entry also expires after ``ttl_s`` seconds as a
safety net.  A revocation committed anywhere is thus seen by the next request, on new and
already-open connections alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

import asyncpg
import structlog

from suishen.central.connection import Connection
from suishen.central.store.gateways import GatewayAuth, read_gateway

CHANNEL: Final = "suishen_gateways"
DEFAULT_TTL_S: Final = 30.0

log = structlog.get_logger("suishen.central.gateway_registry")


# --------------------------------------------------------------------------- the cache


class GatewayRegistry:
    """Gateways' admission rows, cached while LISTEN keeps the cache honest (module doc)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, GatewayAuth | None]] = {}
        self._generation = 0  # bumped on every invalidation: a racing read is not cached
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def lookup(self, gateway_id: str) -> GatewayAuth | None:
        """The gateway's row (None: not registered).  Raises asyncpg/OS errors of the pool."""
        if self.listening.is_set():
            hit = self._cache.get(gateway_id)
            if hit is not None and self._clock() - hit[0] < self._ttl_s:
                return hit[1]
        generation = self._generation
        auth = await read_gateway(self._pool, gateway_id)
        if self.listening.is_set() and generation == self._generation:
            self._cache[gateway_id] = (self._clock(), auth)
        return auth

    def forget(self, gateway_id: str | None = None) -> None:
        """Drop one cached gateway (or all)."""
        self._generation += 1
        if gateway_id is None:
            self._cache.clear()
        else:
            self._cache.pop(gateway_id, None)

    def _on_notify(self, _con: Connection, _pid: int, _channel: str, payload: object) -> None:
        self.forget(str(payload))  # NOTIFY payloads are text

    def _on_lost(self, _con: object = None) -> None:
        self.listening.clear()  # no cache without LISTEN: notifications could be missed
        self.forget()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="gateway-auth-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._on_lost()

    async def _listen(self) -> None:
        from suishen.central.ingest import RETRYABLE_ERRORS  # noqa: PLC0415 - one list of them

        while True:
            lost = asyncio.Event()

            def on_terminated(_con: object, lost: asyncio.Event = lost) -> None:
                self._on_lost()
                lost.set()

            try:
                async with self._pool.acquire() as con:
                    await con.add_listener(CHANNEL, self._on_notify)
                    con.add_termination_listener(on_terminated)
                    try:
                        self.forget()  # whatever changed before LISTEN is re-read
                        self.listening.set()
                        await lost.wait()
                    finally:
                        self._on_lost()
                        con.remove_termination_listener(on_terminated)
                        if not con.is_closed():
                            with contextlib.suppress(*RETRYABLE_ERRORS):
                                await con.remove_listener(CHANNEL, self._on_notify)
                log.warning("gateway_listener_lost")
            except RETRYABLE_ERRORS as exc:
                log.warning("gateway_listener_lost", error=type(exc).__name__)
            await asyncio.sleep(1.0)
