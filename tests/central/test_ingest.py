"""Ingest on real PostgreSQL: exactly once, per-row rejection, site binding, high water."""

from __future__ import annotations

import base64
import datetime as dt

import asyncpg
import pytest

from suishen.central.ingest import GatewayRefused, ingest, store_alerts
from suishen.central.partitions import list_partitions
from suishen.sync.wire import parse_batch

from .hubkit import (
    NOW,
    OTHER_SITE,
    alert_row,
    body,
    device_row,
    passage_row,
    register,
    scan_row,
)


def parsed(gateway_id: str, rows: list[dict]):
    return parse_batch(body(gateway_id, rows), bound_gateway_id=gateway_id)


def mixed_rows(start: int = 1) -> list[dict]:
    s = start
    return [
        scan_row(s),
        passage_row(s + 1, s),
        scan_row(s + 2, verdict="deny", reason="watchlist"),
        alert_row(s + 3, s + 2),
        device_row(s + 4),
    ]


async def test_resent_batch_inserts_nothing_and_answers_same_high_water(
    db_pool: asyncpg.Pool,
) -> None:
    """The same batch sent twice stores every row once; the resend inserts nothing, counts
    every row as a duplicate and answers the same high water."""
    await register(db_pool, "gw-1")
    first = await ingest(db_pool, parsed("gw-1", mixed_rows()))
    assert (first.high_water, first.inserted, first.duplicates, first.rejected) == (5, 5, 0, ())
    again = await ingest(db_pool, parsed("gw-1", mixed_rows()))
    assert (again.high_water, again.inserted, again.duplicates, again.rejected) == (5, 0, 5, ())
    async with db_pool.acquire() as con:
        counts = [
            await con.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("scans", "passages", "alerts", "device_events", "alert_events")
        ]
        assert counts == [2, 1, 1, 1, 1]


async def test_high_water_never_goes_back(db_pool: asyncpg.Pool) -> None:
    """An older batch arriving late (a retry overtaken by a newer one) stores its rows but the
    high water stays at the highest seq seen; an empty batch reports it."""
    await register(db_pool, "gw-1")
    assert (await ingest(db_pool, parsed("gw-1", [scan_row(10), scan_row(11)]))).high_water == 11
    late = await ingest(db_pool, parsed("gw-1", [scan_row(3)]))
    assert (late.high_water, late.inserted) == (11, 1)
    assert (await ingest(db_pool, parsed("gw-1", []))).high_water == 11


async def test_malformed_row_is_rejected_by_seq_and_the_rest_stored(
    db_pool: asyncpg.Pool,
) -> None:
    """One malformed row is rejected with its seq and reason; the rows around it are stored
    and the high water covers it (the gateway quarantines it instead of resending forever)."""
    await register(db_pool, "gw-1")
    rows = [scan_row(1), scan_row(2, direction="sideways"), scan_row(3)]
    result = await ingest(db_pool, parsed("gw-1", rows))
    assert result.inserted == 2
    assert result.high_water == 3
    ((seq, reason),) = result.rejected
    assert seq == 2
    assert "direction" in reason
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT array_agg(seq ORDER BY seq) FROM scans") == [1, 3]


async def test_rows_for_another_site_are_rejected(db_pool: asyncpg.Pool) -> None:
    """A gateway registered at site-a cannot store rows claiming site-b: each such row is
    rejected naming both sites, and nothing of site-b is stored."""
    await register(db_pool, "gw-1")
    rows = [
        scan_row(1),
        scan_row(2, site_id=OTHER_SITE),
        passage_row(3, 2, site_id=OTHER_SITE),
        alert_row(4, 2, site_id=OTHER_SITE),
        device_row(5, site_id=OTHER_SITE),
    ]
    result = await ingest(db_pool, parsed("gw-1", rows))
    assert result.inserted == 1
    assert [seq for seq, _ in result.rejected] == [2, 3, 4, 5]
    assert all("'site-b'" in r and "'site-a'" in r for _, r in result.rejected)
    async with db_pool.acquire() as con:
        for table in ("scans", "passages", "alerts", "device_events"):
            assert await con.fetchval(f"SELECT count(*) FROM {table} WHERE site_id = 'site-b'") == 0


async def test_unknown_and_disabled_gateways_are_refused(db_pool: asyncpg.Pool) -> None:
    """A batch from a gateway the hub does not know, or has disabled, is refused whole (403)
    and stores nothing."""
    with pytest.raises(GatewayRefused) as unknown:
        await ingest(db_pool, parsed("gw-x", [scan_row(1)]))
    assert unknown.value.status == 403
    await register(db_pool, "gw-off", enabled=False)
    with pytest.raises(GatewayRefused):
        await ingest(db_pool, parsed("gw-off", [scan_row(1)]))
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM scans") == 0


async def test_partition_is_created_for_an_old_day(db_pool: asyncpg.Pool) -> None:
    """Rows from a day the partitions do not cover (a gateway offline for weeks) get their
    partition created in the same transaction."""
    await register(db_pool, "gw-1")
    old = NOW - 20 * 86400
    result = await ingest(db_pool, parsed("gw-1", [scan_row(1, ts=old)]))
    assert result.inserted == 1
    day = dt.datetime.fromtimestamp(old, dt.UTC).date()
    async with db_pool.acquire() as con:
        assert day in {d for _, d in await list_partitions(con, "scans")}


async def test_alert_fast_lane_then_bulk_is_one_alert_with_a_received_step(
    db_pool: asyncpg.Pool,
) -> None:
    """An alert sent on the fast lane and again in the bulk upload is stored once, with one
    'received' step by the gateway and an accept-by deadline; the fast lane leaves the high
    water alone."""
    await register(db_pool, "gw-1")
    assert await store_alerts(db_pool, parsed("gw-1", [alert_row(7, 6)])) == 1
    assert await store_alerts(db_pool, parsed("gw-1", [alert_row(7, 6)])) == 0
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT high_water FROM gateways") == 0
    bulk = await ingest(db_pool, parsed("gw-1", [scan_row(6), alert_row(7, 6)]))
    assert (bulk.inserted, bulk.duplicates, bulk.high_water) == (1, 1, 7)
    async with db_pool.acquire() as con:
        events = await con.fetch("SELECT step, actor, deadline FROM alert_events")
        assert [(e["step"], e["actor"]) for e in events] == [("received", "gateway:gw-1")]
        alert = await con.fetchrow("SELECT accept_by, handle_by, received_at FROM alerts")
        assert alert["accept_by"] == events[0]["deadline"]
        assert alert["received_at"] < alert["accept_by"] < alert["handle_by"]


async def test_sealed_identity_and_epoch_are_stored(db_pool: asyncpg.Pool) -> None:
    """A scan's sealed identity and its epoch's ephemeral key reach the tables byte for byte,
    and the epoch is stored once however often it is sent."""
    await register(db_pool, "gw-1")
    sealed, public = b"\x01" + bytes(40), bytes(range(32))
    row = scan_row(1, identity_sealed=sealed, epoch_id="00112233aabbccdd", epoch_public=public)
    for _ in range(2):
        await ingest(db_pool, parsed("gw-1", [row]))
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT identity_sealed FROM scans") == sealed
        assert await con.fetchval("SELECT ephemeral_public FROM epochs") == public
        assert await con.fetchval("SELECT count(*) FROM epochs") == 1
    assert base64.b64decode(body("gw-1", [row])["epochs"]["00112233aabbccdd"]) == public
