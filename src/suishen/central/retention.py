"""Retention: the hub's scheduled job that forgets what it no longer may keep (DESIGN §4).

Each run (``run_retention(con, now=..., policy=...)``):

- drops the daily partitions of scans, passages, device events and visits whose whole day is
  older than ``policy.days`` (default 28), and those of stays older than ``policy.stays_days``
  (their own limit) - through ``partitions.drop_expired_partitions``, the one dropping code;
- deletes alerts (with their timelines) and audit rows past their own, longer limits
  (``partitions.prune_kept_records``);
- deletes visitor invitations whose window ended (or that were cancelled) more than
  ``policy.days`` ago: a person key each, kept as long as the scans they admitted;
- writes one audit row (action ``retention``, actor ``system``) and one log line naming what it
  dropped, so "when was this data forgotten" has an answer.

``maintain(pool, now=..., policy=..., retention=...)`` is the hub's whole upkeep pass (central/
app.py runs it at start and every ``retention.maintenance_interval_s``): partitions created
ahead, the retention run, partitions beyond the clock window dropped.  ``status(con, now=...,
policy=...)`` says what is kept (oldest and newest day of each table) and when retention last
ran (GET /api/v1/retention, ``suishen analyst retention``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict

import asyncpg
import msgspec
import structlog

from suishen.central import partitions
from suishen.central.connection import Connection
from suishen.central.store import audit

log = structlog.get_logger("suishen.central.retention")

STAYS = "stays"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """How many days each kind of record is kept (hub config section [retention])."""

    days: int = partitions.DEFAULT_RETENTION_DAYS
    stays_days: int = partitions.DEFAULT_RETENTION_DAYS
    keep_alerts_days: int = partitions.DEFAULT_KEEP_ALERTS_DAYS
    keep_audit_days: int = partitions.DEFAULT_KEEP_AUDIT_DAYS

    def __post_init__(self) -> None:
        if min(self.days, self.stays_days, self.keep_alerts_days, self.keep_audit_days) < 1:
            raise ValueError("every retention must be at least 1 day")

    def days_of(self, table: str) -> int:
        """Days the partitions of ``table`` are kept."""
        return self.stays_days if table == STAYS else self.days


class RetentionRun(msgspec.Struct, frozen=True, kw_only=True):
    """What one retention run forgot."""

    ran_at: dt.datetime
    dropped: list[str]
    alerts_deleted: int
    audit_deleted: int
    audit_id: int
    invitations_deleted: int = 0


class TableKept(msgspec.Struct, frozen=True, kw_only=True):
    """What a day-partitioned table holds now."""

    table: str
    keep_days: int
    partitions: int
    oldest_day: dt.date | None
    newest_day: dt.date | None


class RetentionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Retention settings, what is kept, and the last run (None: never ran)."""

    tables: list[TableKept]
    keep_alerts_days: int
    keep_audit_days: int
    last_run_at: dt.datetime | None
    last_run_dropped: list[str]


async def run_retention(
    con: Connection, *, now: dt.datetime, policy: RetentionPolicy
) -> RetentionRun:
    """One retention run (see the module docstring)."""
    today = partitions.day_of(now)
    by_days: dict[int, list[str]] = defaultdict(list)
    for table in partitions.PARTITIONED_TABLES:
        by_days[policy.days_of(table)].append(table)
    async with con.transaction():
        dropped: list[str] = []
        for days, tables in sorted(by_days.items()):
            dropped += await partitions.drop_expired_partitions(
                con, today=today, retention_days=days, tables=tables
            )
        alerts, audit_rows = await partitions.prune_kept_records(
            con,
            now=now,
            keep_alerts_days=policy.keep_alerts_days,
            keep_audit_days=policy.keep_audit_days,
        )
        invitations = await _prune_invitations(con, now=now, days=policy.days)
        audit_id = await audit.record(
            con, "system", "retention", dropped=sorted(dropped), alerts_deleted=alerts,
            audit_deleted=audit_rows, invitations_deleted=invitations, days=policy.days,
            stays_days=policy.stays_days,
            keep_alerts_days=policy.keep_alerts_days, keep_audit_days=policy.keep_audit_days,
        )  # fmt: skip
    log.info(
        "retention_ran",
        dropped=sorted(dropped),
        alerts_deleted=alerts,
        audit_deleted=audit_rows,
        invitations_deleted=invitations,
        audit_id=audit_id,
    )
    return RetentionRun(
        ran_at=now,
        dropped=sorted(dropped),
        alerts_deleted=alerts,
        audit_deleted=audit_rows,
        audit_id=audit_id,
        invitations_deleted=invitations,
    )


async def _prune_invitations(con: Connection, *, now: dt.datetime, days: int) -> int:
    """Delete visitor invitations (a person key each) whose window ended, or that were
    cancelled, more than ``days`` ago: they are kept as long as the scans they admitted."""
    deleted = await con.fetchval(
        "WITH d AS (DELETE FROM invitations WHERE LEAST(valid_until, "
        "COALESCE(cancelled_at, valid_until)) < $1 RETURNING 1) SELECT count(*) FROM d",
        now - dt.timedelta(days=days),
    )
    return int(deleted)


async def maintain(
    pool: asyncpg.Pool,
    *,
    now: dt.datetime,
    policy: partitions.PartitionPolicy,
    retention: RetentionPolicy,
) -> tuple[list[str], list[str]]:
    """The hub's upkeep pass: create ahead, run retention, drop far-future partitions.
    Returns (created, dropped) like ``partitions.maintain``."""
    async with pool.acquire() as con:
        created = await partitions.ensure_partitions(
            con, today=partitions.day_of(now), policy=policy
        )
        run = await run_retention(con, now=now, policy=retention)
        future = await partitions.drop_future_partitions(con, now=now, policy=policy)
    return created, run.dropped + [name for name, _rows in future]


async def status(con: Connection, *, policy: RetentionPolicy) -> RetentionStatus:
    """What each table keeps, and the last run (from the audit trail)."""
    tables = []
    for table in partitions.PARTITIONED_TABLES:
        days = [day for _name, day in await partitions.list_partitions(con, table)]
        tables.append(
            TableKept(
                table=table,
                keep_days=policy.days_of(table),
                partitions=len(days),
                oldest_day=days[0] if days else None,
                newest_day=days[-1] if days else None,
            )
        )
    last = await con.fetchrow(
        "SELECT ts, target::text AS target FROM audit WHERE action = 'retention' "
        "ORDER BY audit_id DESC LIMIT 1"
    )
    return RetentionStatus(
        tables=tables,
        keep_alerts_days=policy.keep_alerts_days,
        keep_audit_days=policy.keep_audit_days,
        last_run_at=None if last is None else last["ts"],
        last_run_dropped=[] if last is None else list(json.loads(last["target"])["dropped"]),
    )
