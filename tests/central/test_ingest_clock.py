"""The hub's clock window and partition caps on real PostgreSQL (DESIGN §6): no gateway can make
the hub create partitions for any day of 2000..2100, and far-future partitions do not stay."""

from __future__ import annotations

import datetime as dt
import time

import asyncpg

from suishen.central.ingest import ingest, store_alerts
from suishen.central.partitions import (
    PartitionPolicy,
    ensure_partitions_for,
    list_partitions,
    maintain,
)
from suishen.sync.wire import parse_batch

from .conftest import TODAY
from .hubkit import NOW, alert_row, body, device_row, register, scan_row

DAY = 86400.0
POLICY = PartitionPolicy(retention_days=28, clock_skew_s=900)


def parsed(rows: list[dict]):
    return parse_batch(body("gw-1", rows), bound_gateway_id="gw-1")


async def partition_count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as con:
        return sum(
            [len(await list_partitions(con, t)) for t in ("scans", "passages", "device_events")]
        )


async def test_rows_outside_the_window_are_refused_per_row(db_pool: asyncpg.Pool) -> None:
    """Rows in 2090, 2001, 16 minutes ahead (skew 15) and 30 days old (retention 28 + 1) are
    rejected with a 'clock' reason and create no partition; rows just inside both edges and
    now are taken; the rejected seqs count in the high water.  The fast lane refuses an alert
    from 2090 too."""
    await register(db_pool, "gw-1")
    far = dt.datetime(2090, 6, 1, tzinfo=dt.UTC).timestamp()
    now = time.time()  # hubkit's NOW is the session's start: minutes ago in a long run
    rows = [
        scan_row(1, ts=now),
        scan_row(2, ts=far),
        scan_row(3, ts=dt.datetime(2001, 1, 1, tzinfo=dt.UTC).timestamp()),
        scan_row(4, ts=now + 960),
        dict(device_row(5), ts=now - 30 * DAY),
        scan_row(6, ts=now + 800),
        dict(device_row(7), ts=now - 28.5 * DAY),
        dict(alert_row(8, 1), ts=far),
    ]
    before = await partition_count(db_pool)
    result = await ingest(db_pool, parsed(rows), policy=POLICY)
    assert [seq for seq, _ in result.rejected] == [2, 3, 4, 5, 8]
    assert all(reason.startswith("clock: ts ") for _, reason in result.rejected)
    assert (result.inserted, result.high_water) == (3, 8)
    async with db_pool.acquire() as con:
        days = {day for _, day in await list_partitions(con, "scans")}
    assert not any(day.year in (2001, 2090) for day in days)
    assert await partition_count(db_pool) == before + 1  # device_events 28.5 days ago
    assert await store_alerts(db_pool, parsed([dict(alert_row(9, 1), ts=far)])) == 0


async def test_a_batch_creates_at_most_a_few_partitions(db_pool: asyncpg.Pool) -> None:
    """A batch of scans spread over 20 past days (a gateway back after weeks offline, all in
    the window) creates at most max_new_partitions partitions; the high water stops before the
    first row left out, nothing is rejected, and sending the rest again (as the uploader does)
    stores every row in a few batches."""
    await register(db_pool, "gw-1")
    policy = PartitionPolicy(retention_days=28, max_new_partitions=3)
    rows = [scan_row(n, ts=NOW - (25 - n) * DAY) for n in range(1, 21)]
    before = await partition_count(db_pool)
    first = await ingest(db_pool, parsed(rows), policy=policy)
    assert await partition_count(db_pool) == before + 3
    assert first.rejected == ()
    assert first.inserted == first.high_water == 3
    batches, high_water = 1, first.high_water
    while high_water < 20:
        made = await partition_count(db_pool)
        result = await ingest(db_pool, parsed(rows[high_water:]), policy=policy)
        assert await partition_count(db_pool) - made <= 3
        assert result.high_water > high_water
        high_water, batches = result.high_water, batches + 1
    assert await db_pool.fetchval("SELECT count(*) FROM scans") == 20
    assert batches == 7  # 20 new days, 3 per batch


async def test_a_thousand_days_make_at_most_the_cap(db_pool: asyncpg.Pool) -> None:
    """The attack: one batch of 1000 rows, each on another day of 2000..2100.  Every row is
    refused for its time and no partition is created (before the window: 1000 per table)."""
    await register(db_pool, "gw-1")
    start = dt.datetime(2000, 1, 2, tzinfo=dt.UTC).timestamp()
    rows = [scan_row(n, ts=start + n * 36.5 * DAY) for n in range(1, 1001)]
    before = await partition_count(db_pool)
    result = await ingest(db_pool, parsed(rows), policy=POLICY)
    assert await partition_count(db_pool) - before <= POLICY.max_new_partitions
    assert len(result.rejected) >= 998  # the one or two days near today may be in the window


async def test_maintenance_drops_far_future_partitions(db_pool: asyncpg.Pool) -> None:
    """Partitions for 2090 and for 20 days ahead (one holding a row taken before the window
    existed) are dropped by a maintenance pass; those it creates itself (today+7) stay."""
    async with db_pool.acquire() as con:
        for table in ("scans", "device_events"):
            await ensure_partitions_for(
                con, table, [dt.date(2090, 1, 1), TODAY + dt.timedelta(days=20)]
            )
        await con.execute(
            "INSERT INTO device_events (gateway_id, seq, ts, site_id) VALUES ('gw-x', 1, $1, 's')",
            dt.datetime.combine(TODAY + dt.timedelta(days=20), dt.time(12), tzinfo=dt.UTC),
        )
    now = dt.datetime.now(dt.UTC)
    _created, dropped = await maintain(db_pool, now=now, policy=POLICY)
    assert sorted(dropped) == sorted(
        f"{table}_p{day:%Y%m%d}"
        for table in ("scans", "device_events")
        for day in (dt.date(2090, 1, 1), TODAY + dt.timedelta(days=20))
    )
    async with db_pool.acquire() as con:
        days = {day for _, day in await list_partitions(con, "scans")}
    assert TODAY + dt.timedelta(days=7) in days
    assert max(days) <= POLICY.last_future_day(now)
