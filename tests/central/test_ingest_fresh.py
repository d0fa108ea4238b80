"""Ingest's two ways in: a batch wholly above its journal's high water goes straight into the
tables by COPY, one reaching at or below it goes through staging and the conflict look-up.
Either way every row is stored once, a resend is all duplicates, and other content under a
held key is refused and recorded."""

from __future__ import annotations

import asyncpg

from suishen.central.ingest import ingest
from suishen.sync.wire import parse_batch

from .hubkit import body, passage_row, register, scan_row


def parsed(rows: list[dict]):
    return parse_batch(body("gw-1", rows), bound_gateway_id="gw-1")


async def _count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_a_batch_straddling_the_high_water(db_pool: asyncpg.Pool) -> None:
    """Rows 1-4 stored; then 3-6 (two held, two new): the held ones are duplicates, the new
    ones inserted, the high water 6; sending 5-8 (two held again) and 9-10 (fresh) the same."""
    await register(db_pool, "gw-1")
    first = await ingest(
        db_pool, parsed([scan_row(1), passage_row(2, 1), scan_row(3), scan_row(4)])
    )
    assert (first.high_water, first.inserted, first.duplicates) == (4, 4, 0)
    straddle = await ingest(db_pool, parsed([scan_row(s) for s in (3, 4, 5, 6)]))
    assert (straddle.high_water, straddle.inserted, straddle.duplicates) == (6, 2, 2)
    again = await ingest(db_pool, parsed([scan_row(s) for s in (5, 6, 7, 8)]))
    assert (again.high_water, again.inserted, again.duplicates) == (8, 2, 2)
    fresh = await ingest(db_pool, parsed([scan_row(9), passage_row(10, 9)]))
    assert (fresh.high_water, fresh.inserted, fresh.duplicates, fresh.rejected) == (10, 2, 0, ())
    assert await _count(db_pool, "scans") == 8
    assert await _count(db_pool, "passages") == 2


async def test_other_content_below_the_high_water_is_still_a_conflict(
    db_pool: asyncpg.Pool,
) -> None:
    """After a fresh batch went in by COPY, a batch reusing one of its seqs with other content
    is refused for that row (conflict, recorded) and the new rows beside it are stored."""
    await register(db_pool, "gw-1")
    await ingest(db_pool, parsed([scan_row(1), scan_row(2)]))
    changed = await ingest(
        db_pool, parsed([scan_row(2, verdict="deny", reason="status_red"), scan_row(3)])
    )
    assert changed.inserted == 1 and changed.high_water == 3
    assert [seq for seq, reason in changed.rejected if reason.startswith("conflict")] == [2]
    assert await _count(db_pool, "ingest_conflicts") == 1
    assert await _count(db_pool, "scans") == 3
