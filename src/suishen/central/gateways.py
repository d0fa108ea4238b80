"""Which client certificate each gateway may present, and who may connect (DESIGN §6).

The hub pins one certificate per gateway: ``gateways.cert_sha256``, the SHA-256 of its DER
(``sync.pki.certificate_sha256``).  A request is served only when the gateway is registered,
enabled, and its verified peer certificate has exactly that fingerprint.

Changes (each in the caller's transaction; history in ``gateway_certificates``):

- ``pin_certificate``: register a gateway's certificate (``suishen hub gateway add --cert`` /
  ``--pki``, ``suishen hub gateway reissue``); the one pinned before is retired as
  ``replaced`` and refused from then on.  A retired certificate cannot be pinned again.
- ``revoke_certificate``: retire the current one as ``revoked``; the gateway has no usable
  certificate until a new one is pinned (``suishen hub gateway revoke``).
- ``set_enabled``: a disabled gateway is refused on every request.

"At once": a trigger (deploy/sql/0004_gateway_certs.sql) notifies ``suishen_gateways`` with the
gateway_id when its pin, enabled flag or site changes.  :class:`GatewayRegistry` caches each
gateway's row (one query per gateway, not per request) and drops the entry when notified; the
cache is used only while its LISTEN connection is up (after a loss it is cleared, and requests
query the database until LISTEN is back), and an entry also expires after ``ttl_s`` seconds as a
safety net.  A revocation committed anywhere is thus seen by the next request, on new and
already-open connections alike.

Exceptions::

    GatewayChangeError (ValueError)   a change that cannot be made (unknown gateway, a retired
                                      or foreign certificate)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Final

import asyncpg
import structlog

from suishen.protocol.vocabulary import CertificateRetired

CHANNEL: Final = "suishen_gateways"
DEFAULT_TTL_S: Final = 30.0

log = structlog.get_logger("suishen.central.gateways")


class GatewayChangeError(ValueError):
    """A gateway change that cannot be made."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayAuth:
    """What the hub needs to admit a gateway's request."""

    gateway_id: str
    site_id: str
    enabled: bool
    cert_sha256: str | None


# --------------------------------------------------------------------------- changes


async def pin_certificate(con: asyncpg.Connection, gateway_id: str, cert_sha256: str) -> bool:
    """Make ``cert_sha256`` the gateway's only accepted certificate (call in a transaction).

    Returns False when it already was.  Raises GatewayChangeError for an unknown gateway, a
    certificate already retired, or one pinned for another gateway.
    """
    current = await con.fetchval(
        "SELECT cert_sha256 FROM gateways WHERE gateway_id = $1 FOR UPDATE", gateway_id
    )
    if current is None and not await con.fetchval(
        "SELECT true FROM gateways WHERE gateway_id = $1", gateway_id
    ):
        raise GatewayChangeError(f"gateway {gateway_id!r} is not registered")
    known = await con.fetchrow(
        "SELECT gateway_id, retired_why FROM gateway_certificates WHERE cert_sha256 = $1",
        cert_sha256,
    )
    if known is not None and known["gateway_id"] != gateway_id:
        raise GatewayChangeError("that certificate is registered for another gateway")
    if known is not None and known["retired_why"] is not None:
        raise GatewayChangeError(
            f"that certificate was {known['retired_why']}; issue a new one "
            "(suishen hub gateway reissue)"
        )
    if current == cert_sha256:
        return False
    await con.execute(
        "UPDATE gateway_certificates SET retired_at = now(), retired_why = $2 "
        "WHERE gateway_id = $1 AND retired_at IS NULL",
        gateway_id,
        CertificateRetired.REPLACED.value,
    )
    await con.execute(
        "INSERT INTO gateway_certificates (cert_sha256, gateway_id) VALUES ($1, $2)",
        cert_sha256,
        gateway_id,
    )
    await con.execute(
        "UPDATE gateways SET cert_sha256 = $2 WHERE gateway_id = $1", gateway_id, cert_sha256
    )
    return True


async def revoke_certificate(con: asyncpg.Connection, gateway_id: str) -> str | None:
    """Refuse the gateway's current certificate from now on; its fingerprint, or None when
    it had none.  Raises GatewayChangeError for an unknown gateway."""
    row = await con.fetchrow(
        "SELECT cert_sha256 FROM gateways WHERE gateway_id = $1 FOR UPDATE", gateway_id
    )
    if row is None:
        raise GatewayChangeError(f"gateway {gateway_id!r} is not registered")
    await con.execute(
        "UPDATE gateway_certificates SET retired_at = now(), retired_why = $2 "
        "WHERE gateway_id = $1 AND retired_at IS NULL",
        gateway_id,
        CertificateRetired.REVOKED.value,
    )
    await con.execute("UPDATE gateways SET cert_sha256 = NULL WHERE gateway_id = $1", gateway_id)
    revoked: str | None = row["cert_sha256"]
    return revoked


async def set_enabled(con: asyncpg.Connection, gateway_id: str, enabled: bool) -> None:
    """Enable or disable a gateway (disabled: 403 on every request)."""
    done = await con.fetchval(
        "UPDATE gateways SET enabled = $2 WHERE gateway_id = $1 RETURNING true",
        gateway_id,
        enabled,
    )
    if not done:
        raise GatewayChangeError(f"gateway {gateway_id!r} is not registered")


async def read_gateway(
    con: asyncpg.Connection | asyncpg.Pool, gateway_id: str
) -> GatewayAuth | None:
    row = await con.fetchrow(
        "SELECT gateway_id, site_id, enabled, cert_sha256 FROM gateways WHERE gateway_id = $1",
        gateway_id,
    )
    if row is None:
        return None
    return GatewayAuth(
        gateway_id=row["gateway_id"],
        site_id=row["site_id"],
        enabled=row["enabled"],
        cert_sha256=row["cert_sha256"],
    )


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

    def _on_notify(self, _con: object, _pid: int, _channel: str, payload: str) -> None:
        self.forget(payload)

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
        from suishen.sync.ingest import RETRYABLE_ERRORS  # noqa: PLC0415 - one list of them

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
