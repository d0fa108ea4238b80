"""bench/web.py, run tiny: the COPY data generator fills real partitions with rows the schema
accepts, and the live-feed harness measures a real gateway's lane display."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
from bench.web import (
    SITES,
    Options,
    RssSampler,
    generate_scans,
    lane_display_latency,
    measure_hub,
    percentile,
    scan_rows,
    site_ids,
)


async def test_generator_copies_scans_over_days_and_sites(db_pool: asyncpg.Pool) -> None:
    """2000 generated scans land in three days' partitions over every site (a tenth at the
    first), each site's seq numbering its rows in time order, denials with a reason, masked
    names only."""
    now = dt.datetime.now(dt.UTC)
    generated = await generate_scans(db_pool, rows=2000, days=3, now=now, persons=50)
    assert generated.rows == 2000 and len(generated.sites) == SITES
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM scans") == 2000
        per_site = await con.fetch("SELECT site_id, count(*) AS n FROM scans GROUP BY site_id")
        assert {r["site_id"] for r in per_site} == set(site_ids())
        counts = {r["site_id"]: r["n"] for r in per_site}
        assert counts.pop(site_ids()[0]) == 200  # the big site: a tenth (its export)
        assert sum(counts.values()) == 1800 and min(counts.values()) > 0
        days = await con.fetchval("SELECT count(DISTINCT tableoid) FROM scans")
        assert days >= 3
        ordered = await con.fetchval(
            "SELECT bool_and(prev_ts IS NULL OR prev_ts <= ts) FROM ("
            " SELECT ts, lag(ts) OVER (PARTITION BY gateway_id ORDER BY seq) AS prev_ts"
            " FROM scans) t"
        )
        assert ordered is True
        denied = await con.fetchval("SELECT count(*) FROM scans WHERE verdict = 'deny'")
        assert 0 < denied < 300
        names = await con.fetch("SELECT DISTINCT masked_name FROM scans")
        assert all("*" in r["masked_name"] for r in names)
        lanes = await con.fetchval("SELECT count(*) FROM lanes")
        assert lanes == SITES * 8


def test_scan_rows_come_in_chunks_in_time_order() -> None:
    """Rows come in bounded chunks (constant memory at any scale), in time order."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    chunks = list(
        scan_rows(
            rows=120_001, sites=site_ids(), start=start, end=start + dt.timedelta(days=1), persons=9
        )
    )
    assert [len(c) for c in chunks] == [50_000, 50_000, 20_001]
    times = [row[2] for chunk in chunks for row in chunk]
    assert times == sorted(times) and times[0] == start


def test_percentile_nearest_rank() -> None:
    """p50 and p99 by nearest rank, as the bench reports them."""
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


async def test_lane_display_feed_latency_is_measured(tmp_path: Path) -> None:
    """The live-feed harness: 2 lanes x 2 tablets x 3 scans, every event seen, latencies
    positive and under a second on loopback."""
    feed = await lane_display_latency(tmp_path, lanes=2, tablets_per_lane=2, scans_per_lane=3)
    assert feed.scans == 6 and feed.decided == 6  # one person at a time: none was lane_busy
    assert feed.events == feed.expected == 12
    assert all(0 < s < 1 for s in feed.latencies_s)


async def test_rss_sampler_sees_growth() -> None:
    """The export's memory measure: the sampler's peak sees memory the process takes."""
    async with RssSampler(interval_s=0.001) as sampler:
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        await asyncio.sleep(0.01)
    assert sampler.peak - sampler.before >= 32 * 1024 * 1024
    del block


async def test_hub_pages_export_and_live_feed_are_measured(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The hub part of the bench, tiny: two users load the dashboard and the scan log through
    the real web UI (logged in through the form), the big site's CSV streams every one of its
    rows, and a gateway's scans reach two dashboards' live feeds."""
    generated = await generate_scans(db_pool, rows=400, days=2, persons=20)
    options = Options(scale=400 / 10_000_000, days=2, users=2, rounds=1, feed_scans_per_lane=2)
    results = await measure_hub(db_pool, tmp_path, options, generated.sites)
    pages = results["pages"]
    assert pages["measured"], pages
    assert set(pages["per_page"]) == {"/site/{site}", "/site/{site}/scans"}
    assert all(page["requests"] == 2 for page in pages["per_page"].values())
    export = results["export"]
    assert export["measured"], export
    assert export["rows"] == 40  # the first site holds a tenth of the rows
    feed = results["hub_live_feed"]
    assert feed["events"] == feed["expected"] == 4
    assert 0 < feed["p99_s"] < 5


async def test_generated_rows_were_received_soon_after_they_were_made(
    db_pool: asyncpg.Pool,
) -> None:
    """received_at follows ts by the upload delay, as ingest stamps real rows (else all 10M
    rows would look just received to the live feed and the health queries)."""
    await generate_scans(db_pool, rows=200, days=2, persons=10)
    delays = await db_pool.fetch("SELECT DISTINCT received_at - ts AS d FROM scans")
    assert [r["d"] for r in delays] == [dt.timedelta(seconds=0.4)]
