"""Visits and stays derived from ingested scans (central/derive.py) on real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

import asyncpg

from suishen.central import derive, partitions
from suishen.central.derive import (
    DeriveSettings,
    close_stale,
    derive_ingested,
    derive_scans,
)
from suishen.central.derive_pairing import next_reset
from suishen.central.ingest import ingest
from suishen.sync.wire import SCAN_COLUMNS, parse_batch
from tests.central.hubkit import SITE, body, person, register, scan_row

P = person(1)
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")  # the sites table's default timezone
NOW = dt.datetime.now(dt.UTC)
# An hour after a daily reset (04:00 Shanghai) between one and two days ago: a few hours from
# BASE on lie before the next reset and in the past.
BASE = next_reset(NOW - dt.timedelta(days=2), TZ, 4) + dt.timedelta(hours=1)


def at(hours: float) -> float:
    return (BASE + dt.timedelta(hours=hours)).timestamp()


def row(seq: int, hours: float, direction: str = "in", key: str = P, **over: object) -> dict:
    # scan_row adds seq ms to ts: subtract it so that ts is exactly BASE + hours.
    return scan_row(seq, ts=at(hours) - seq * 1e-3, direction=direction, person_key=key, **over)


async def send(pool: asyncpg.Pool, gateway_id: str, rows: list[dict]) -> None:
    await ingest(pool, parse_batch(body(gateway_id, rows), bound_gateway_id=gateway_id))


async def visits(pool: asyncpg.Pool) -> list[tuple]:
    async with pool.acquire() as con:
        rows = await con.fetch(
            "SELECT person_key, in_gateway_id, in_ts, out_gateway_id, out_ts, close_reason "
            "FROM visits ORDER BY in_ts"
        )
    return [tuple(r) for r in rows]


def h(hours: float) -> dt.datetime:
    return BASE + dt.timedelta(hours=hours)


async def test_in_and_out_at_two_gateways_of_a_site_make_one_closed_visit(
    db_pool: asyncpg.Pool,
) -> None:
    """An allowed in at gateway 1 and the out at gateway 2 of the same site pair into one
    visit closed 'out'; a denied scan and another person's scan pair with nothing."""
    await register(db_pool, "gw-1")
    await register(db_pool, "gw-2")
    await send(db_pool, "gw-1", [row(1, 0), row(2, 0.5, verdict="deny", reason="expired")])
    await send(db_pool, "gw-2", [row(1, 2, "out"), row(2, 2.5, "out", key=person(9))])
    assert await visits(db_pool) == [(P, "gw-1", h(0), "gw-2", h(2), "out")]


async def test_out_arriving_before_its_in_and_resent_batches_give_the_same_visits(
    db_pool: asyncpg.Pool,
) -> None:
    """The out (gateway 2) is uploaded before the in (gateway 1): the visit is paired when
    the in arrives; resending both batches, in either order, changes nothing."""
    await register(db_pool, "gw-1")
    await register(db_pool, "gw-2")
    outs = [row(1, 1, "out"), row(2, 3, "out")]
    ins = [row(1, 0), row(2, 2)]
    await send(db_pool, "gw-2", outs)
    assert await visits(db_pool) == []
    await send(db_pool, "gw-1", ins)
    expected = [
        (P, "gw-1", h(0), "gw-2", h(1), "out"),
        (P, "gw-1", h(2), "gw-2", h(3), "out"),
    ]
    assert await visits(db_pool) == expected
    await send(db_pool, "gw-1", ins)
    await send(db_pool, "gw-2", outs)
    assert await visits(db_pool) == expected


async def test_late_out_replaces_a_reset_close_and_reentry_closes_at_the_next_in(
    db_pool: asyncpg.Pool,
) -> None:
    """An in with no out is closed at the next daily reset once it has passed; the out
    arriving later (an offline gateway) replaces that close.  Two ins with no out between:
    the first ends at the second ('reentry')."""
    await register(db_pool, "gw-1")
    await register(db_pool, "gw-2")
    await send(db_pool, "gw-1", [row(1, 0), row(2, 5), row(3, 8)])  # 8 + 16 h: after the reset
    reset = next_reset(h(0), TZ, 4)
    got = await visits(db_pool)
    assert got[0] == (P, "gw-1", h(0), None, h(5), "reentry")
    assert got[1] == (P, "gw-1", h(5), None, h(8), "reentry")
    assert got[2] == (P, "gw-1", h(8), None, reset, "reset")
    await send(db_pool, "gw-2", [row(1, 9, "out")])
    assert (await visits(db_pool))[2] == (P, "gw-1", h(8), "gw-2", h(9), "out")


async def test_open_visit_until_its_limit_then_closed_by_max_length(
    con: asyncpg.Connection,
) -> None:
    """An in whose limit has not passed stays open with close_by = in + max length (no reset
    within it); close_stale after that time closes it 'max_length', exactly at close_by."""
    await register(con, "gw-1")
    config = DeriveSettings(reset_hour=4, max_visit_hours=2.0)
    start = h(0.25)
    # The row goes in by plain INSERT (not through ingest, which makes its partitions): its UTC
    # day can lie before the days the test template holds (BASE is a Shanghai-time reset up to
    # two days back), so the test makes it, whatever the hour it runs at.
    await partitions.ensure_partitions_for(con, "scans", [partitions.day_of(start)])
    await con.execute(
        "INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction, format, verdict, "
        "person_key) VALUES ('gw-1', 1, $1, $2, 'lane-1', 'in', 'SSC1', 'allow', $3)",
        start,
        SITE,
        P,
    )
    async with con.transaction():
        await derive_scans(con, SITE, [(P, "in", start)], now=start, config=config)
    got = await con.fetchrow("SELECT out_ts, close_reason, close_by FROM visits")
    assert tuple(got) == (None, None, start + dt.timedelta(hours=2))
    assert (
        await close_stale(
            con, now=start + dt.timedelta(hours=2) - dt.timedelta(microseconds=1), config=config
        )
        == 0
    )
    assert await close_stale(con, now=start + dt.timedelta(hours=2), config=config) == 1
    got = await con.fetchrow("SELECT out_ts, close_reason FROM visits")
    assert tuple(got) == (start + dt.timedelta(hours=2), "max_length")


async def test_stays_pair_checkin_with_checkout_and_keep_the_room(db_pool: asyncpg.Pool) -> None:
    """A checkin opens a stay (nationality and minor from the scan); a room set by the hotel
    is kept when the checkout, arriving later, closes it 'out'."""
    await register(db_pool, "gw-1", "hotel-1", kind="hotel")
    await send(
        db_pool, "gw-1", [row(1, 0, "checkin", site_id="hotel-1", nationality="DEU", minor=True)]
    )
    async with db_pool.acquire() as con:
        await con.execute("UPDATE stays SET room = '1203'")
    await send(db_pool, "gw-1", [row(2, 20, "checkout", site_id="hotel-1")])
    async with db_pool.acquire() as con:
        got = await con.fetchrow(
            "SELECT nationality, minor, room, checkout_ts, close_reason FROM stays"
        )
    assert tuple(got) == ("DEU", True, "1203", h(20), "out")


def test_configure_sets_the_ingest_settings() -> None:
    """The hub's [visits] settings reach the derivation the ingest calls."""
    before = derive.settings()
    try:
        derive.configure(DeriveSettings(max_visit_hours=3.0))
        assert derive.settings().max_visit == dt.timedelta(hours=3)
    finally:
        derive.configure(before)


async def test_two_gateways_of_a_site_uploading_at_once_still_pair(
    db_pool: asyncpg.Pool,
) -> None:
    """Gateway 1's ins and gateway 2's outs uploaded concurrently (many times over): the
    derivations serialise on the site, so the later one sees the other's rows and every
    visit is paired, whichever commits first."""
    await register(db_pool, "gw-1")
    await register(db_pool, "gw-2")
    for round_ in range(4):
        key = person(100 + round_)
        ins = [row(1 + round_, round_ * 0.5, key=key)]
        outs = [row(1 + round_, round_ * 0.5 + 0.25, "out", key=key)]
        await asyncio.gather(send(db_pool, "gw-1", ins), send(db_pool, "gw-2", outs))
    got = await visits(db_pool)
    assert len(got) == 4
    assert all(v[3] == "gw-2" and v[5] == "out" for v in got), got


async def test_ingest_derivation_writes_only_the_visits_that_changed(
    con: asyncpg.Connection,
) -> None:
    """derive_ingested counts the visits it inserted or changed: a batch's two new visits; the
    same batch again, nothing (no visit re-written); a late out from another gateway that
    closes the second visit, that one visit (the first, recomputed alongside, is unchanged
    and not written again)."""
    await register(con, "gw-1")
    await register(con, "gw-2")
    first = parse_batch(
        body("gw-1", [row(1, 0), row(2, 1, "out"), row(3, 2)]), bound_gateway_id="gw-1"
    ).scans
    late = parse_batch(body("gw-2", [row(1, 3, "out")]), bound_gateway_id="gw-2").scans
    await partitions.ensure_partitions_for(
        con, "scans", {partitions.day_of(h(0)), partitions.day_of(h(3))}
    )

    async def upload(scans: list[tuple]) -> int:
        async with con.transaction():
            await con.executemany(
                f"INSERT INTO scans ({', '.join(SCAN_COLUMNS)}) VALUES "
                f"({', '.join(f'${i + 1}' for i in range(len(SCAN_COLUMNS)))}) "
                "ON CONFLICT DO NOTHING",
                scans,
            )
            return await derive_ingested(con, SITE, scans, now=NOW)

    assert await upload(first) == 2
    assert await upload(first) == 0
    assert await upload(late) == 1
    got = await con.fetch(
        "SELECT in_ts, out_gateway_id, out_ts, close_reason FROM visits ORDER BY in_ts"
    )
    assert [tuple(r) for r in got] == [(h(0), "gw-1", h(1), "out"), (h(2), "gw-2", h(3), "out")]
