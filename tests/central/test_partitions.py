"""Daily partitions, retention and the idempotent (gateway_id, seq, ts) key, on real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from suishen.central.partitions import (
    PARTITIONED_TABLES,
    PartitionPolicy,
    day_of,
    drop_expired_partitions,
    ensure_partitions,
    ensure_partitions_for,
    list_partitions,
    maintain,
    partition_name,
    prune_kept_records,
)
from suishen.sync.wire import SCAN_COLUMNS

from .conftest import TODAY

GATEWAY = "gw-1"
PERSON = "ab" * 32

INSERT_SCAN = f"""
INSERT INTO scans ({", ".join(SCAN_COLUMNS)})
VALUES ({", ".join(f"${i}" for i in range(1, len(SCAN_COLUMNS) + 1))})
ON CONFLICT DO NOTHING
"""


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def scan_row(seq: int, ts: dt.datetime) -> tuple[object, ...]:
    return (
        GATEWAY,
        seq,
        ts,
        "site-1",
        "lane-1",
        "in",
        "SSC1",
        "allow",
        None,
        PERSON,
        "CHN",
        False,
        "G",
        "张*明",
        "310***********1234",
        "00" * 16,
        "a2lkLWtpZA==",
        "main",
        850,
        b"\x01" + b"\x00" * 40,
        "0123456789abcdef",
        "fedcba9876543210",  # journal_id
    )


async def test_partitions_exist_ahead(con: asyncpg.Connection) -> None:
    """The template made yesterday .. today+7 for every partitioned table; a re-run adds none."""
    wanted = {TODAY + dt.timedelta(days=d) for d in range(-1, 8)}
    for table in PARTITIONED_TABLES:
        days = {day for _, day in await list_partitions(con, table)}
        assert days == wanted, table
    assert await ensure_partitions(con, today=TODAY) == []
    later = await ensure_partitions(con, today=TODAY + dt.timedelta(days=2))
    assert sorted(later) == sorted(
        partition_name(t, TODAY + dt.timedelta(days=d)) for t in PARTITIONED_TABLES for d in (8, 9)
    )


async def test_row_lands_in_its_days_partition(con: asyncpg.Connection) -> None:
    """A scan at noon UTC of a day goes to that day's partition; the boundary is midnight UTC."""
    tomorrow = TODAY + dt.timedelta(days=1)
    midnight = dt.datetime.combine(tomorrow, dt.time(), tzinfo=dt.UTC)
    await con.execute(INSERT_SCAN, *scan_row(1, noon(TODAY)))
    await con.execute(INSERT_SCAN, *scan_row(2, midnight))
    await con.execute(INSERT_SCAN, *scan_row(3, midnight - dt.timedelta(microseconds=1)))
    rows = await con.fetch("SELECT seq, tableoid::regclass::text AS part FROM scans ORDER BY seq")
    assert [(r["seq"], r["part"]) for r in rows] == [
        (1, partition_name("scans", TODAY)),
        (2, partition_name("scans", tomorrow)),
        (3, partition_name("scans", TODAY)),
    ]


async def test_row_for_a_day_without_partition_fails_until_created(
    con: asyncpg.Connection,
) -> None:
    """There is no default partition: ingest creates the day's partition first."""
    far = TODAY + dt.timedelta(days=60)
    with pytest.raises(asyncpg.CheckViolationError):
        await con.execute(INSERT_SCAN, *scan_row(1, noon(far)))
    assert await ensure_partitions_for(con, "scans", [far, far]) == [partition_name("scans", far)]
    await con.execute(INSERT_SCAN, *scan_row(1, noon(far)))
    assert await con.fetchval("SELECT count(*) FROM scans") == 1


async def test_same_row_twice_inserts_once(con: asyncpg.Connection) -> None:
    """INSERT .. ON CONFLICT DO NOTHING on (site_id, gateway_id, journal_id, seq, ts): a resent
    row inserts nothing."""
    row = scan_row(7, noon(TODAY))
    assert await con.execute(INSERT_SCAN, *row) == "INSERT 0 1"
    assert await con.execute(INSERT_SCAN, *row) == "INSERT 0 0"
    assert await con.fetchval("SELECT count(*) FROM scans") == 1


async def test_resent_batch_through_staging_inserts_nothing(db_pool: asyncpg.Pool) -> None:
    """The ingest path: COPY into the connection's TEMP staging table, INSERT .. SELECT ..
    ON CONFLICT DO NOTHING; the commit empties staging; a resent batch adds no row."""
    start = noon(TODAY)
    batch = [scan_row(seq, start + dt.timedelta(seconds=seq)) for seq in range(1, 201)]
    columns = ", ".join(SCAN_COLUMNS)
    inserted = []
    for _ in range(2):
        async with db_pool.acquire() as con, con.transaction():
            await con.copy_records_to_table("staging_scans", records=batch, columns=SCAN_COLUMNS)
            status = await con.execute(
                f"INSERT INTO scans ({columns}) SELECT {columns} FROM staging_scans "
                "ON CONFLICT DO NOTHING"
            )
            inserted.append(status)
        async with db_pool.acquire() as con:
            assert await con.fetchval("SELECT count(*) FROM staging_scans") == 0
    assert inserted == ["INSERT 0 200", "INSERT 0 0"]
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM scans") == 200
        received = await con.fetchval("SELECT count(*) FROM scans WHERE received_at IS NOT NULL")
        assert received == 200


async def test_retention_drops_old_days_but_keeps_alerts_and_audit(
    con: asyncpg.Connection,
) -> None:
    """Partitions older than retention_days go; the boundary day stays; alerts and audit,
    not partitioned, keep their old rows."""
    old_days = [TODAY - dt.timedelta(days=d) for d in (40, 29, 28)]
    for table in PARTITIONED_TABLES:
        await ensure_partitions_for(con, table, old_days)
    for seq, day in enumerate(old_days, start=1):
        await con.execute(INSERT_SCAN, *scan_row(seq, noon(day)))
        await con.execute(
            "INSERT INTO alerts (gateway_id, seq, ts, site_id, kind, route, level, person_key) "
            "VALUES ($1, $2, $3, 'site-1', 'watchlist', 'police', 'deny', $4)",
            GATEWAY,
            100 + seq,
            noon(day),
            PERSON,
        )
        await con.execute(
            "INSERT INTO audit (ts, actor, action, reason, case_ref) "
            "VALUES ($1, 'ana', 'reveal', 'tracing', 'case 7')",
            noon(day),
        )

    dropped = await drop_expired_partitions(con, today=TODAY, retention_days=28)

    gone = {TODAY - dt.timedelta(days=d) for d in (40, 29)}
    assert sorted(dropped) == sorted(partition_name(t, d) for t in PARTITIONED_TABLES for d in gone)
    days = {day for _, day in await list_partitions(con, "scans")}
    assert not days & gone
    assert TODAY - dt.timedelta(days=28) in days
    assert await con.fetchval("SELECT count(*) FROM scans") == 1
    assert await con.fetchval("SELECT count(*) FROM alerts") == 3
    assert await con.fetchval("SELECT count(*) FROM audit") == 3
    assert await drop_expired_partitions(con, today=TODAY, retention_days=28) == []


async def test_prune_kept_records_uses_the_longer_retention(con: asyncpg.Connection) -> None:
    """Alerts (with their timeline) and audit rows go only after their own, longer retention."""
    now = noon(TODAY)
    for seq, age in enumerate((400, 30), start=1):
        alert_id = await con.fetchval(
            "INSERT INTO alerts (gateway_id, seq, ts, site_id, kind, route) "
            "VALUES ($1, $2, $3, 'site-1', 'capacity', 'staff') RETURNING alert_id",
            GATEWAY,
            seq,
            now - dt.timedelta(days=age),
        )
        await con.execute(
            "INSERT INTO alert_events (alert_id, step, actor) VALUES ($1, 'received', 'system')",
            alert_id,
        )
        await con.execute(
            "INSERT INTO audit (ts, actor, action) VALUES ($1, 'admin', 'export')",
            now - dt.timedelta(days=age),
        )
    assert await prune_kept_records(con, now=now) == (1, 1)
    assert await con.fetchval("SELECT count(*) FROM alerts") == 1
    assert await con.fetchval("SELECT count(*) FROM alert_events") == 1
    assert await con.fetchval("SELECT count(*) FROM audit") == 1


async def test_maintain_creates_and_drops(db_pool: asyncpg.Pool) -> None:
    """One maintenance pass 30 days on: that window's days are created, days past retention
    dropped, the rest kept."""
    later = noon(TODAY + dt.timedelta(days=30))
    created, dropped = await maintain(db_pool, now=later, policy=PartitionPolicy(days_ahead=7))
    assert len(created) == len(PARTITIONED_TABLES) * 9  # TODAY+29 .. TODAY+37
    assert len(dropped) == len(PARTITIONED_TABLES) * 3  # TODAY-1 .. TODAY+1
    async with db_pool.acquire() as con:
        days = [day for _, day in await list_partitions(con, "stays")]
    assert days[0] == day_of(later) - dt.timedelta(days=28)
    assert days[-1] == day_of(later) + dt.timedelta(days=7)


def test_day_of_needs_an_aware_time() -> None:
    """Partitions are by UTC day; a naive datetime is ambiguous and refused."""
    assert day_of(dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-8)))) == (
        dt.date(2026, 1, 2)
    )
    with pytest.raises(ValueError, match="naive"):
        day_of(dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
