"""Signed bundles at the hub: lists kept in PostgreSQL, versioned, signed, long-polled (DESIGN §6).

Changes.  The lists' rows change through central/store/lists.py, each change bumping its
list's version in the same transaction.

Notification.  A trigger on ``bundle_versions`` (deploy/sql/0002_ingest.sql) sends
``NOTIFY suishen_bundles, '<kind>:<version>'``; PostgreSQL delivers it at commit, to every
listening hub process.  LISTEN/NOTIFY rather than an in-process asyncio.Condition because
the change is usually made by *another* process (``suishen hub watchlist add``, the web
listener, a second hub behind a load balancer): only the database sees every change.  A
:class:`BundleService` holds one pooled connection LISTENing, and re-reads all versions every
``poll_s`` seconds as a safety net (a notification lost with a dropped connection is then
late by at most ``poll_s``, well inside the 15 s target); a lost connection is replaced.
In-process, waiters sleep on a per-kind :class:`asyncio.Event` that is set and replaced at
each new version (settable from asyncpg's synchronous notification callback).

Building.  ``get(kind, site_id)`` reads the version and the rows in one REPEATABLE READ
snapshot, builds the body (protocol/listbodies.py; trust: the trust file document), signs it
(protocol/bundles.seal_bundle, the hub's Ed25519 bundle key) and caches the signed bytes per
(kind, scope) until a newer version exists; a lock per (kind, scope) builds it once however many
long-pollers wake together.  The emergency kind is per site too, and its bundle carries the
version of the site's newest command (the kind's version counts every site's commands), so a
command for another site never re-sends this site's as new.  Expiry: every poll also
tombstones the watchlist entries whose expiry has passed (``store.watchlist.expire_due``, a
new version), so they leave the next bundle by themselves; so do visitor invitations whose
window has ended (``store.invitations.expire_due``, a new roster version).  Scope: the roster
(workers, hours, invitations) and the emergency command are per site (a gateway gets its own
site's); trust, watchlist and calendar are the same for every gateway.

"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.connection import Connection
from suishen.central.store import invitations, site_ops, watchlist
from suishen.protocol.bundles import BUNDLE_KINDS, seal_bundle
from suishen.protocol.listbodies import (
    Invitation,
    RosterWorker,
    WatchlistRow,
    emergency_body,
    roster_body,
    watchlist_body,
)
from suishen.protocol.trust import TRUST_FILE_VERSION

CHANNEL: Final = "suishen_bundles"
MAX_WAIT_S: Final = 30.0
PER_SITE: Final = frozenset({"roster", "emergency"})  # a gateway gets its own site's

log = structlog.get_logger("suishen.central.bundle_service")


# --------------------------------------------------------------------------- bodies


def _posix(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _day_start(value: dt.date | None) -> int | None:
    if value is None:
        return None
    return int(dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC).timestamp())


def _day_end(value: dt.date | None) -> int | None:
    start = _day_start(value)
    return None if start is None else start + 86399


async def read_body(con: Connection, kind: str, site_id: str | None) -> Any:
    """The body of ``kind`` from the current rows (tombstones and expired entries left out)."""
    if kind == "watchlist":
        rows = await con.fetch(
            "SELECT person_key, level, route, reason, expires_at FROM watchlist "
            "WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
            "ORDER BY person_key"
        )
        return watchlist_body(
            (
                r["person_key"],
                WatchlistRow(
                    level=r["level"],
                    route=r["route"],
                    reason=r["reason"],
                    expires_at=_posix(r["expires_at"]),
                ),
            )
            for r in rows
        )
    if kind == "trust":
        rows = await con.fetch(
            "SELECT entry::text AS entry FROM trust_keys WHERE removed_at IS NULL ORDER BY kid"
        )
        return {"version": TRUST_FILE_VERSION, "keys": [json.loads(r["entry"]) for r in rows]}
    if kind == "calendar":
        calendar = await site_ops.current_calendar(con)
        return None if calendar is None else calendar.document
    if kind == "emergency":
        latest = await site_ops.latest_emergency(con, site_id)
        return None if latest is None else emergency_body(latest[1])
    rows = await con.fetch(
        "SELECT person_key, site_id, masked_name, card_number, valid_from, valid_until, "
        "work_group FROM workers WHERE removed_at IS NULL AND site_id = $1 ORDER BY person_key",
        site_id,
    )
    profiles, groups = await _roster_hours(con, site_id)
    workers = (
        (
            r["person_key"],
            RosterWorker(
                site_id=r["site_id"],
                valid_from=_day_start(r["valid_from"]),
                valid_to=_day_end(r["valid_until"]),
                name_mask=r["masked_name"],
                card=r["card_number"],
                group=r["work_group"],
            ),
        )
        for r in rows
    )
    return roster_body(
        workers,
        invitations=await _roster_invitations(con, site_id),
        time_profiles=profiles,
        groups=groups,
    )


async def _roster_hours(
    con: Connection, site_id: str | None
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The site's time profiles and roster group -> profile (`suishen hub site hours`)."""
    return await site_ops.site_hours(con, site_id)


async def _body_version(con: Connection, kind: str, site_id: str | None, version: int) -> int:
    """The version a bundle of ``kind`` carries: the kind's, except for the emergency kind,
    whose version is that of the site's newest command (another site's command does not
    make a new bundle for this one, so an old command is never sent again as new)."""
    if kind != "emergency":
        return version
    latest = await site_ops.latest_emergency(con, site_id)
    return 0 if latest is None else latest[0]


async def _roster_invitations(con: Connection, site_id: str | None) -> list[tuple[str, Invitation]]:
    """The site's current visitor invitations (not cancelled, not expired, not over)."""
    return await invitations.roster_invitations(con, site_id)


# --------------------------------------------------------------------------- the service


@dataclasses.dataclass(frozen=True, slots=True)
class SignedBundle:
    kind: str
    version: int
    data: bytes


class BundleService:
    """Current versions (kept fresh by LISTEN/NOTIFY), signed bundles (cached), long-poll."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: ed25519.Ed25519PrivateKey,
        *,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._key = key
        self._poll_s = poll_s
        self._clock = clock
        self._versions = dict.fromkeys(sorted(BUNDLE_KINDS), 0)
        self._changed = {kind: asyncio.Event() for kind in self._versions}
        # (kind, scope) -> (the kind's version when built, the bundle or None: none yet)
        self._cache: dict[tuple[str, str], tuple[int, SignedBundle | None]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.listening = asyncio.Event()  # set once LISTEN is in place (tests, readiness)

    # ----- versions

    def version(self, kind: str) -> int:
        return self._versions[kind]

    def _saw(self, kind: str, version: int) -> None:
        if kind in self._versions and version > self._versions[kind]:
            self._versions[kind] = version
            event, self._changed[kind] = self._changed[kind], asyncio.Event()
            event.set()

    def _on_notify(self, _con: Connection, _pid: int, _channel: str, payload: object) -> None:
        kind, _, version = str(payload).partition(":")  # NOTIFY payloads are text
        with contextlib.suppress(ValueError):
            self._saw(kind, int(version))

    async def refresh(self, con: Connection | asyncpg.Pool | None = None) -> None:
        """Re-read every version from the database."""
        rows = await (con or self._pool).fetch("SELECT kind, version FROM bundle_versions")
        for row in rows:
            self._saw(row["kind"], row["version"])

    async def wait_newer(self, kind: str, after: int, wait_s: float) -> int:
        """The current version of ``kind`` once it exceeds ``after``, or when ``wait_s``
        seconds have passed (or the service closes), whichever comes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(wait_s, MAX_WAIT_S))
        while self._versions[kind] <= after and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed[kind].wait(), remaining)
        return self._versions[kind]

    # ----- signed bundles

    async def get(self, kind: str, site_id: str | None = None) -> SignedBundle | None:
        """The newest signed bundle of ``kind`` (for ``site_id``'s gateways: the roster is per
        site); None when the list never had a version."""
        scope = (kind, (site_id or "") if kind in PER_SITE else "")
        cached = self._cache.get(scope)
        if cached is not None and cached[0] >= self._versions[kind]:
            return cached[1]
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            cached = self._cache.get(scope)
            if cached is not None and cached[0] >= self._versions[kind]:
                return cached[1]
            async with (
                self._pool.acquire() as con,
                con.transaction(isolation="repeatable_read", readonly=True),
            ):
                kind_version = await con.fetchval(
                    "SELECT version FROM bundle_versions WHERE kind = $1", kind
                )
                if not kind_version:
                    return None
                version = await _body_version(con, kind, site_id, kind_version)
                body = await read_body(con, kind, site_id) if version else None
            self._saw(kind, kind_version)
            if body is None:  # nothing published for this scope yet
                self._cache[scope] = (kind_version, None)
                return None
            data = seal_bundle(
                kind=kind, version=version, issued_at=int(self._clock()), body=body, key=self._key
            )
            bundle = SignedBundle(kind, version, data)
            self._cache[scope] = (kind_version, bundle)
            log.info("bundle_signed", kind=kind, version=version, size=len(data), scope=scope[1])
            return bundle

    async def expire_watchlist(self, con: Connection) -> list[str]:
        """Tombstone watchlist entries past their expiry (a new version, so the next bundle
        leaves them out by itself); run on every poll."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        expired = await watchlist.expire_due(con, now=now)
        if expired:
            log.info("watchlist_expired", entries=len(expired))
        return expired

    async def expire_invitations(self, con: Connection) -> list[int]:
        """Mark visitor invitations whose window has ended expired (a new roster version, so
        the next roster bundle leaves them out by itself); run on every poll."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        expired = await invitations.expire_due(con, now=now)
        if expired:
            log.info("invitations_expired", invitations=len(expired))
        return expired

    # ----- lifecycle

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._listen(), name="bundle-listener")

    async def close(self) -> None:
        """Wake every long-poller (they answer at once) and stop listening."""
        self._closing = True
        for event in self._changed.values():
            event.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        from suishen.central.ingest import RETRYABLE_ERRORS  # noqa: PLC0415 - one list of them

        while True:
            try:
                async with self._pool.acquire() as con:
                    await con.add_listener(CHANNEL, self._on_notify)
                    try:
                        self.listening.set()
                        while True:
                            await self.refresh(con)  # also catches what came before LISTEN
                            await self.expire_watchlist(con)
                            await self.expire_invitations(con)
                            await asyncio.sleep(self._poll_s)
                    finally:
                        self.listening.clear()
                        if not con.is_closed():
                            with contextlib.suppress(*RETRYABLE_ERRORS):
                                await con.remove_listener(CHANNEL, self._on_notify)
            except RETRYABLE_ERRORS as exc:
                log.warning("bundle_listener_lost", error=type(exc).__name__)
                await asyncio.sleep(1.0)
