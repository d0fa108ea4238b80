"""Daily partitions of the time-partitioned tables: created ahead, dropped by retention.

Each table in PARTITIONED_TABLES is ``PARTITION BY RANGE (<column>)`` (deploy/sql/0001_init.sql,
0002_ingest.sql) with one partition per UTC day, ``<table>_pYYYYMMDD`` FOR VALUES FROM (day 00:00
UTC) TO (next day 00:00 UTC).  Keys and indexes declared on the parent apply to every partition.

- ``ensure_partitions(con, today=...)`` creates ``days_back`` .. ``days_ahead`` days around today
  (the hub runs it at start and hourly; `suishen hub migrate` runs it once);
- ``ensure_partitions_for(con, table, days)`` creates the partitions a batch needs when a row's
  day is outside that window (a gateway that was offline a week, or a clock far off);
- ``drop_expired_partitions(con, today=..., retention_days=28)`` drops whole days older than the
  retention (DESIGN §4): ``DROP TABLE`` of a partition is instant and leaves no dead rows;
- ``drop_future_partitions(con, now=..., policy=...)`` drops partitions of days beyond both
  ``today + days_ahead`` and the clock window's end (``now + clock_skew_s + 1 day``): the ingest
  refuses rows there (its clock window), so such a partition is empty or holds rows taken
  before the window existed, which are out of window; either way it only slows planning.

The clock window (``PartitionPolicy.window(now)``): the hub takes a row only when its ts is in
[now - retention_days - 1 day, now + clock_skew_s] - rows outside are refused per row (reason
``clock``), so no gateway can make the hub create partitions for any day of 2000..2100.  A batch
creates at most ``max_new_partitions`` partitions; rows needing more wait for the next batch.
  Alerts, their timeline and the audit log are not partitioned and not touched here; they are
  kept longer and pruned row by row by ``prune_kept_records`` (default 365 days).

All functions take "today" / "now" as a parameter (no clock reads) and serialise on a
transaction-level advisory lock, so two hubs maintaining partitions at once do not collide.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Iterable

import asyncpg

from suishen.central.connection import Connection

# table -> its partition column
PARTITIONED_TABLES: dict[str, str] = {
    "scans": "ts",
    "passages": "ts",
    "device_events": "ts",
    "visits": "in_ts",
    "stays": "checkin_ts",
}
DEFAULT_RETENTION_DAYS = 28
DEFAULT_DAYS_AHEAD = 7
DEFAULT_KEEP_ALERTS_DAYS = 365
DEFAULT_KEEP_AUDIT_DAYS = 365
DEFAULT_CLOCK_SKEW_S = 900
DEFAULT_MAX_NEW_PARTITIONS = 6  # per batch: two new days of the three tables a batch fills

PARTITION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"suishen:partitions").digest()[:8], "big", signed=True
)
_SUFFIX = re.compile(r"^_p(\d{8})$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PartitionPolicy:
    """How far ahead partitions exist and how long partitioned data is kept."""

    days_ahead: int = DEFAULT_DAYS_AHEAD
    days_back: int = 1  # also create yesterday's (rows that arrive late after midnight)
    retention_days: int = DEFAULT_RETENTION_DAYS
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S  # how far ahead of the hub a row's ts may be
    max_new_partitions: int = DEFAULT_MAX_NEW_PARTITIONS  # per ingest batch

    def __post_init__(self) -> None:
        if self.days_ahead < 0 or self.days_back < 0:
            raise ValueError("days_ahead and days_back must be >= 0")
        if self.retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        if not 0 <= self.clock_skew_s <= 7 * 86400:
            raise ValueError("clock_skew_s must be in 0..604800")
        if self.max_new_partitions < 1:
            raise ValueError("max_new_partitions must be >= 1")

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The ts a row may have: [now - retention_days - 1 day, now + clock_skew_s]."""
        low = now - dt.timedelta(days=self.retention_days + 1)
        return low, now + dt.timedelta(seconds=self.clock_skew_s)

    def last_future_day(self, now: dt.datetime) -> dt.date:
        """The last day a partition may be kept for: the later of the days maintenance creates
        ahead and the clock window's end plus a day."""
        window_end = now + dt.timedelta(seconds=self.clock_skew_s) + dt.timedelta(days=1)
        return max(day_of(now) + dt.timedelta(days=self.days_ahead), day_of(window_end))


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_of(ts: dt.datetime) -> dt.date:
    """The UTC day a timestamp's row lands in."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: partitions are by UTC day, give an aware time")
    return ts.astimezone(dt.UTC).date()


def _bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _check_table(table: str) -> None:
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table!r} is not a day-partitioned table")


async def list_partitions(con: Connection, table: str) -> list[tuple[str, dt.date]]:
    """(name, day) of each daily partition of ``table``, oldest first."""
    _check_table(table)
    rows = await con.fetch(
        """
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass($1)
        """,
        table,
    )
    found = []
    for row in rows:
        name: str = row["relname"]
        match = _SUFFIX.match(name[len(table) :]) if name.startswith(table) else None
        if match is not None:
            found.append((name, dt.datetime.strptime(match[1], "%Y%m%d").date()))  # noqa: DTZ007 - a date
    return sorted(found, key=lambda item: item[1])


async def ensure_partitions_for(con: Connection, table: str, days: Iterable[dt.date]) -> list[str]:
    """Create the partitions of ``table`` for ``days`` that do not exist; return those created."""
    _check_table(table)
    wanted = sorted(set(days))
    if not wanted:
        return []
    created = []
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        existing = {day for _, day in await list_partitions(con, table)}
        for day in wanted:
            if day in existing:
                continue
            name = partition_name(table, day)
            start, end = _bounds(day)
            # Identifiers are ours (table from PARTITIONED_TABLES, name from a date); bounds
            # are ISO literals of datetimes we built.  DDL takes no bind parameters.
            await con.execute(
                f'CREATE TABLE "{name}" PARTITION OF "{table}" '
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            created.append(name)
    return created


async def ensure_partitions(
    con: Connection,
    *,
    today: dt.date,
    policy: PartitionPolicy = PartitionPolicy(),  # frozen: a shared default is safe
    tables: Iterable[str] = PARTITIONED_TABLES,
) -> list[str]:
    """Create partitions from ``today - days_back`` to ``today + days_ahead`` for each table."""
    days = [
        today + dt.timedelta(days=offset)
        for offset in range(-policy.days_back, policy.days_ahead + 1)
    ]
    created = []
    for table in tables:
        created += await ensure_partitions_for(con, table, days)
    return created


async def drop_expired_partitions(
    con: Connection,
    *,
    today: dt.date,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    tables: Iterable[str] = PARTITIONED_TABLES,
) -> list[str]:
    """Drop daily partitions whose whole day is older than ``retention_days`` before ``today``
    (the day ``today - retention_days`` is kept); return the names dropped."""
    if retention_days < 1:
        raise ValueError("retention_days must be >= 1")
    oldest_kept = today - dt.timedelta(days=retention_days)
    dropped = []
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        for table in tables:
            for name, day in await list_partitions(con, table):
                if day < oldest_kept:
                    await con.execute(f'DROP TABLE "{name}"')
                    dropped.append(name)
    return dropped


async def drop_future_partitions(
    con: Connection,
    *,
    now: dt.datetime,
    policy: PartitionPolicy = PartitionPolicy(),  # frozen: a shared default is safe
    tables: Iterable[str] = PARTITIONED_TABLES,
) -> list[tuple[str, int]]:
    """Drop partitions of days after ``policy.last_future_day(now)`` (see the module
    docstring); return (name, rows it held) of each dropped."""
    last = policy.last_future_day(now)
    dropped = []
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        for table in tables:
            for name, day in await list_partitions(con, table):
                if day > last:
                    rows = await con.fetchval(f'SELECT count(*) FROM "{name}"')  # noqa: S608
                    await con.execute(f'DROP TABLE "{name}"')
                    dropped.append((name, int(rows)))
    return dropped


async def prune_kept_records(
    con: Connection,
    *,
    now: dt.datetime,
    keep_alerts_days: int = DEFAULT_KEEP_ALERTS_DAYS,
    keep_audit_days: int = DEFAULT_KEEP_AUDIT_DAYS,
) -> tuple[int, int]:
    """Delete alerts (with their timeline) and audit rows past their longer retention;
    return (alerts deleted, audit rows deleted)."""
    async with con.transaction():
        alerts = await con.fetchval(
            "WITH d AS (DELETE FROM alerts WHERE ts < $1 RETURNING 1) SELECT count(*) FROM d",
            now - dt.timedelta(days=keep_alerts_days),
        )
        audit = await con.fetchval(
            "WITH d AS (DELETE FROM audit WHERE ts < $1 RETURNING 1) SELECT count(*) FROM d",
            now - dt.timedelta(days=keep_audit_days),
        )
    return int(alerts), int(audit)


async def maintain(
    pool: asyncpg.Pool,
    *,
    now: dt.datetime,
    policy: PartitionPolicy = PartitionPolicy(),  # frozen: a shared default is safe
) -> tuple[list[str], list[str]]:
    """One maintenance pass (the hub runs it at start and hourly): create ahead, drop expired
    and far-future partitions.  Returns (created, dropped)."""
    today = day_of(now)
    async with pool.acquire() as con:
        created = await ensure_partitions(con, today=today, policy=policy)
        dropped = await drop_expired_partitions(
            con, today=today, retention_days=policy.retention_days
        )
        future = await drop_future_partitions(con, now=now, policy=policy)
    return created, dropped + [name for name, _rows in future]
