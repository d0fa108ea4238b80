"""The live feed: scans pushed to browsers as they are ingested (server-sent events).

One ``LiveFeed`` per web app (``app[LIVE_FEED]``, made by ``feed_ctx`` in web/app.py CONTEXTS).
It holds one pooled connection that LISTENs on ``suishen_scans``: ingest's INSERT into scans
notifies the site_id of every site a batch held (deploy/sql/0006_web.sql).  A worker task then
reads the new rows of the sites someone watches (queries/site.recent_scans, a small overlap
window plus the keys already sent, so a row committed late is neither lost nor sent twice) and
puts them in each subscriber's queue.  It also polls every ``POLL_S`` while anyone watches, so
a lost notification delays a row by at most that.

A subscriber is one SSE stream of one site: the view checks the user's scope for the site
first (NotFound otherwise), so rows of a site reach only those allowed to see it.  A slow
browser whose queue is full misses rows rather than holding memory.  ``close()`` (on app
shutdown, before handlers are awaited) ends every stream at once, so the hub stops promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from suishen.central.db import DB_POOL
from suishen.central.errors import Unavailable
from suishen.central.queries import site as queries
from suishen.central.scope import Scope

log = structlog.get_logger("suishen.central.web.feed")

CHANNEL = "suishen_scans"
POLL_S = 2.0
OVERLAP = dt.timedelta(seconds=5)
QUEUE_ROWS = 200

Key = tuple[str, str, int]
Queue = asyncio.Queue[queries.ScanRow | None]


class LiveFeed:
    """Fan-out of newly ingested scans to SSE subscribers, per site."""

    def __init__(self, pool: asyncpg.Pool, *, max_streams: int = 200) -> None:
        self._pool = pool
        self._max_streams = max_streams
        self._subscribers: dict[str, set[Queue]] = {}
        self._marks: dict[str, dt.datetime] = {}
        self._sent: dict[str, dict[Key, dt.datetime]] = {}
        self._wake = asyncio.Event()
        self._con: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def streams(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())

    async def start(self) -> None:
        self._con = await self._pool.acquire()
        await self._con.add_listener(CHANNEL, self._notified)
        self._task = asyncio.create_task(self._run(), name="live-feed")

    async def close(self) -> None:
        """End every stream now and stop listening (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for queues in self._subscribers.values():
            for queue in queues:
                _put(queue, None, force=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._con is not None:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await self._con.remove_listener(CHANNEL, self._notified)
            await self._pool.release(self._con)
            self._con = None

    async def subscribe(self, site_id: str) -> Queue:
        """A queue of the site's new scans (None at the end); Unavailable when full or closed."""
        if self._closed or self.streams >= self._max_streams:
            raise Unavailable("too many live streams; try again later")
        if site_id not in self._subscribers:
            # Rows already there (up to the overlap window back) count as sent: a new stream
            # shows what arrives from now on.
            async with self._pool.acquire() as con:
                now: dt.datetime = await con.fetchval("SELECT now()")
                seen = await queries.recent_scans(
                    con,
                    Scope.everywhere(),
                    queries.RecentParams(
                        site_ids=(site_id,), received_after=now - OVERLAP, limit=10_000
                    ),
                )
            self._marks[site_id] = now
            self._sent[site_id] = {(r.gateway_id, r.journal_id, r.seq): r.received_at for r in seen}
        queue: Queue = asyncio.Queue(QUEUE_ROWS + 1)
        self._subscribers.setdefault(site_id, set()).add(queue)
        return queue

    def unsubscribe(self, site_id: str, queue: Queue) -> None:
        queues = self._subscribers.get(site_id)
        if queues is None:
            return
        queues.discard(queue)
        if not queues:
            del self._subscribers[site_id]
            self._marks.pop(site_id, None)
            self._sent.pop(site_id, None)

    def _notified(self, _con: object, _pid: int, _channel: str, payload: str) -> None:
        if payload in self._subscribers:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()
            self._wake.clear()
            for site_id in list(self._subscribers):
                try:
                    await self._deliver(site_id)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    log.warning("live_feed_read_failed", site_id=site_id, error=type(exc).__name__)

    async def _deliver(self, site_id: str) -> None:
        mark = self._marks.get(site_id)
        if mark is None:
            return
        async with self._pool.acquire() as con:
            rows = await queries.recent_scans(
                con,
                Scope.everywhere(),  # the site's subscribers were scope-checked by the view
                queries.RecentParams(site_ids=(site_id,), received_after=mark - OVERLAP),
            )
        sent = self._sent.get(site_id)
        if sent is None:  # unsubscribed meanwhile
            return
        for row in rows:
            key = (row.gateway_id, row.journal_id, row.seq)
            if key in sent:
                continue
            sent[key] = row.received_at
            self._marks[site_id] = max(self._marks[site_id], row.received_at)
            for queue in self._subscribers.get(site_id, ()):
                _put(queue, row)
        horizon = self._marks[site_id] - 2 * OVERLAP
        for key in [k for k, at in sent.items() if at < horizon]:
            del sent[key]


def _put(queue: Queue, item: queries.ScanRow | None, *, force: bool = False) -> None:
    if force:
        while queue.full():
            queue.get_nowait()
    if not queue.full() and (force or queue.qsize() < QUEUE_ROWS):
        queue.put_nowait(item)


LIVE_FEED: web.AppKey[LiveFeed] = web.AppKey("live_feed", LiveFeed)
MAX_STREAMS: web.AppKey[int] = web.AppKey("live_feed_max_streams", int)


async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the app's LiveFeed, started after the pool and closed before it."""
    live = LiveFeed(app[DB_POOL], max_streams=app.get(MAX_STREAMS, 200))
    await live.start()
    app[LIVE_FEED] = live
    yield
    await live.close()


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every live stream before aiohttp waits for the handlers."""
    if LIVE_FEED in app:
        await app[LIVE_FEED].close()
