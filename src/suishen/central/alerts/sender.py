"""The hub's webhook sender and reminder task: drains ``webhook_outbox``, logs every attempt.

A delivery is claimed by pushing its ``next_at`` past the send timeout (a lease: a hub that
dies mid-send leaves the row to be taken again once the lease runs out, so a restart loses no
delivery), POSTed with its signature (central/alerts/signing.py), and recorded in
``webhook_deliveries``: ``delivered`` (2xx), ``failed`` (retried after a protocol.backoff delay:
doubling from ``webhook_retry_initial_s``, full jitter, capped) or ``gave_up`` (the last of
``webhook_max_attempts``). ``LISTEN suishen_webhooks`` wakes the sender when a step queues one;
it also looks every ``outbox_poll_s``.

The reminder pass (every ``reminder_interval_s``) logs ``alert_reminder`` once per alert and
step, when the step due next enters its reminder window (or is already overdue).

``alerts_ctx(section)`` is the app.cleanup_ctx entry: it writes the configured deadlines into
``alert_deadlines``, then runs both tasks until the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from suishen.central.alerts.endpoints import SecretError, read_secret
from suishen.central.alerts.loop import WEBHOOK_CHANNEL, store_deadlines
from suishen.central.alerts.settings import AlertsSection
from suishen.central.alerts.signing import HEADER, sign
from suishen.central.db import DB_POOL
from suishen.central.ingest import RETRYABLE_ERRORS
from suishen.central.queries.alerts import DUE_SQL
from suishen.protocol.backoff import Backoff

__all__ = ["alerts_ctx", "drain_once", "log_reminders"]

log = structlog.get_logger("suishen.central.alerts.sender")

BATCH: Final = 20
USER_AGENT: Final = "suishen-hub-webhooks/1"

_CLAIM: Final = """
UPDATE webhook_outbox o SET next_at = now() + make_interval(secs => $1)
FROM (SELECT outbox_id FROM webhook_outbox WHERE done_at IS NULL AND next_at <= now()
      ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
WHERE o.outbox_id = due.outbox_id
RETURNING o.outbox_id, o.alert_id, o.route, o.step, o.body, o.attempts
"""
_RECORD: Final = """
WITH logged AS (
    INSERT INTO webhook_deliveries
        (outbox_id, alert_id, route, step, attempt, status, response_code, error)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
)
UPDATE webhook_outbox SET attempts = $5,
    done_at = CASE WHEN $6 = 'failed' THEN NULL ELSE now() END,
    next_at = now() + make_interval(secs => $9)
WHERE outbox_id = $1
"""


async def _post(
    session: aiohttp.ClientSession, url: str, secret: bytes, row: Any, timeout_s: float
) -> tuple[int | None, str]:
    body = row["body"].encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        HEADER: sign(secret, body, int(time.time())),
        "X-Suishen-Delivery": str(row["outbox_id"]),
        "X-Suishen-Event": f"alert.{row['step']}",
    }
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            await response.read()
            return response.status, ""
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return None, type(exc).__name__


async def _deliver(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, section: AlertsSection, row: Any
) -> str:
    async with pool.acquire() as con:
        endpoint = await con.fetchrow(
            "SELECT url, secret_file FROM webhook_endpoints WHERE route = $1 AND enabled",
            row["route"],
        )
    attempt = row["attempts"] + 1
    if endpoint is None:
        code, error = None, "endpoint disabled or removed"
    else:
        try:
            secret = await asyncio.to_thread(read_secret, endpoint["secret_file"])
        except SecretError as exc:
            code, error = None, str(exc)
        else:
            code, error = await _post(
                session, endpoint["url"], secret, row, section.webhook_timeout_s
            )
    if code is not None and 200 <= code < 300:
        status, delay = "delivered", 0.0
    else:
        error = error or f"HTTP {code}"
        backoff = Backoff(
            initial_s=section.webhook_retry_initial_s, cap_s=section.webhook_retry_cap_s
        )
        backoff.failures = row["attempts"]
        delay = backoff.next_delay()
        status = "gave_up" if attempt >= section.webhook_max_attempts else "failed"
    async with pool.acquire() as con:
        await con.execute(
            _RECORD,
            row["outbox_id"],
            row["alert_id"],
            row["route"],
            row["step"],
            attempt,
            status,
            code,
            error[:500],
            delay,
        )
    level = log.info if status == "delivered" else log.warning
    level(
        "webhook_delivery",
        alert_id=row["alert_id"],
        route=row["route"],
        step=row["step"],
        attempt=attempt,
        status=status,
        response_code=code,
        error=error or None,
    )
    return status


async def drain_once(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, section: AlertsSection
) -> int:
    """Deliver the outbox rows due now (one claimed batch); return how many were attempted."""
    async with pool.acquire() as con:
        rows = await con.fetch(_CLAIM, section.webhook_timeout_s * 2 + 5, BATCH)
    if rows:
        await asyncio.gather(*(_deliver(pool, session, section, row) for row in rows))
    return len(rows)


_REMIND: Final = f"""
UPDATE alerts a SET reminded_step = a.state
FROM (SELECT a.alert_id, {DUE_SQL} AS due_at, coalesce(d.remind_share, 0.2) AS share
      FROM alerts a LEFT JOIN alert_deadlines d ON d.route = a.route
      WHERE a.state NOT IN ('fed_back', 'closed')
        AND a.reminded_step IS DISTINCT FROM a.state) s
WHERE a.alert_id = s.alert_id AND s.due_at IS NOT NULL
  AND now() >= s.due_at - (s.due_at - a.received_at) * s.share
RETURNING a.alert_id, a.site_id, a.route, a.state, s.due_at, s.due_at < now() AS overdue
"""  # noqa: S608 - DUE_SQL is a constant of queries/alerts.py


async def log_reminders(pool: asyncpg.Pool) -> int:
    """Log one ``alert_reminder`` per alert whose next step entered its reminder window."""
    async with pool.acquire() as con:
        rows = await con.fetch(_REMIND)
    for row in rows:
        log.warning(
            "alert_reminder",
            alert_id=row["alert_id"],
            site_id=row["site_id"],
            route=row["route"],
            state=row["state"],
            due_at=row["due_at"].isoformat(),
            overdue=row["overdue"],
        )
    return len(rows)


async def _sender(pool: asyncpg.Pool, section: AlertsSection, wake: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            wake.clear()
            try:
                while await drain_once(pool, session, section) == BATCH:
                    pass
            except RETRYABLE_ERRORS as exc:
                log.warning("webhook_sender_db_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), section.outbox_poll_s)


async def _reminders(pool: asyncpg.Pool, section: AlertsSection) -> None:
    while True:
        try:
            await log_reminders(pool)
        except RETRYABLE_ERRORS as exc:
            log.warning("alert_reminders_failed", error=type(exc).__name__)
        await asyncio.sleep(section.reminder_interval_s)


def alerts_ctx(section: AlertsSection) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup_ctx entry running the sender and the reminder pass (see the docstring)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = app[DB_POOL]
        async with pool.acquire() as con, con.transaction():
            await store_deadlines(con, section)
        wake = asyncio.Event()
        listener = await pool.acquire()

        def notified(*_: object) -> None:
            wake.set()

        await listener.add_listener(WEBHOOK_CHANNEL, notified)
        tasks = [
            asyncio.create_task(_sender(pool, section, wake), name="webhook-sender"),
            asyncio.create_task(_reminders(pool, section), name="alert-reminders"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(*RETRYABLE_ERRORS):
                await listener.remove_listener(WEBHOOK_CHANNEL, notified)
            await pool.release(listener)

    return ctx
