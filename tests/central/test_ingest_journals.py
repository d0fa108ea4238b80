"""Journal ids at the hub (real PostgreSQL): a recreated journal's seqs are new rows, and a row
whose (gateway_id, journal_id, seq) is held with other content is refused and recorded."""

from __future__ import annotations

import asyncpg
from structlog.testing import capture_logs

from suishen.central.ingest import ingest, store_alerts
from suishen.sync.wire import encode_batch, parse_batch

from .hubkit import NOW, alert_row, device_row, passage_row, register, scan_row

OLD, NEW = "00000000000000aa", "00000000000000bb"


def parsed(rows: list[dict], journal_id: str | None):
    return parse_batch(encode_batch("gw-1", rows, journal_id=journal_id), bound_gateway_id="gw-1")


def rows_from(start_ts: float) -> list[dict]:
    """seq 1..5 of one journal: a scan, its passage, a denied scan, its alert, a device."""
    return [
        scan_row(1, ts=start_ts),
        dict(passage_row(2, 1), ts=start_ts + 1),
        scan_row(3, ts=start_ts, verdict="deny", reason="watchlist"),
        dict(alert_row(4, 3), ts=start_ts + 2),
        dict(device_row(5), ts=start_ts + 3),
    ]


async def count(pool: asyncpg.Pool, sql: str) -> int:
    return int(await pool.fetchval(sql))


async def test_recreated_journal_is_new_rows_with_its_own_high_water(
    db_pool: asyncpg.Pool,
) -> None:
    """Journal OLD uploads seqs 1..5; its file is lost and journal NEW numbers from 1 again
    (other times): every row of NEW is stored - the alert too, on the fast lane and in bulk -
    none is a duplicate or a conflict, and each journal has its own high water."""
    await register(db_pool, "gw-1")
    first = await ingest(db_pool, parsed(rows_from(NOW - 60), OLD))
    assert (first.inserted, first.duplicates, first.high_water) == (5, 0, 5)
    new_rows = rows_from(NOW)
    assert await store_alerts(db_pool, parsed([new_rows[3]], NEW)) == 1
    second = await ingest(db_pool, parsed(new_rows[:2], NEW))
    assert (second.inserted, second.duplicates, second.high_water, second.rejected) == (
        2, 0, 2, ()
    )  # fmt: skip
    third = await ingest(db_pool, parsed(new_rows, NEW))
    assert (third.inserted, third.duplicates, third.high_water, third.rejected) == (2, 3, 5, ())
    for table, n in (("scans", 4), ("passages", 2), ("alerts", 2), ("device_events", 2)):
        assert await count(db_pool, f"SELECT count(*) FROM {table}") == n, table
    assert await count(db_pool, "SELECT count(*) FROM ingest_conflicts") == 0
    journals = await db_pool.fetch(
        "SELECT journal_id, high_water FROM gateway_journals ORDER BY journal_id"
    )
    assert [tuple(r) for r in journals] == [(OLD, 5), (NEW, 5)]


async def test_other_content_under_a_held_key_is_refused_and_recorded(
    db_pool: asyncpg.Pool,
) -> None:
    """Within one journal, a seq that comes again with another ts (scan 1, device 5) or other
    content (passage 2's outcome, alert 4's route) is rejected with a 'conflict' reason,
    recorded once in ingest_conflicts and logged with its seq; the stored rows are unchanged;
    an identical resend is still a plain duplicate.  The fast lane records an alert conflict
    too."""
    await register(db_pool, "gw-1")
    rows = rows_from(NOW)
    await ingest(db_pool, parsed(rows, OLD))
    changed = [
        dict(rows[0], ts=NOW + 30),
        dict(rows[1], outcome="not_passed"),
        rows[2],
        alert_row(4, 3, route="staff"),
        dict(rows[4], ts=NOW + 40),
    ]
    changed[3]["ts"] = rows[3]["ts"]
    for _ in range(2):
        with capture_logs() as logs:
            result = await ingest(db_pool, parsed(changed, OLD))
        assert [seq for seq, _ in result.rejected] == [1, 2, 4, 5]
        assert all(reason.startswith("conflict") for _, reason in result.rejected)
        assert (result.inserted, result.duplicates, result.high_water) == (0, 1, 5)
        logged = [e["seq"] for e in logs if e["event"].startswith("ingest conflict")]
        assert sorted(logged) == [1, 2, 4, 5]
    assert await store_alerts(db_pool, parsed([changed[3]], OLD)) == 0
    recorded = await db_pool.fetch("SELECT seq, kind FROM ingest_conflicts ORDER BY seq")
    assert [tuple(r) for r in recorded] == [
        (1, "scan"),
        (2, "passage"),
        (4, "alert"),
        (5, "device"),
    ]
    assert await count(db_pool, "SELECT count(*) FROM scans") == 2
    assert await db_pool.fetchval("SELECT outcome FROM passages") == "passed"
    assert await db_pool.fetchval("SELECT route FROM alerts") == "police"


async def test_batch_without_journal_id_is_the_legacy_journal(db_pool: asyncpg.Pool) -> None:
    """A gateway from before journal ids sends none: its rows are stored under journal ''
    (as 0003 kept the rows already held), resends are duplicates."""
    await register(db_pool, "gw-1")
    for inserted in (5, 0):
        result = await ingest(db_pool, parsed(rows_from(NOW), None))
        assert (result.inserted, result.high_water) == (inserted, 5)
    assert await count(db_pool, "SELECT count(*) FROM scans WHERE journal_id = ''") == 2
