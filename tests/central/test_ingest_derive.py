"""The ingest's derivation on real PostgreSQL: a fresh batch's visits are inserted unchecked,
and a key held all the same does not stop the batch."""

from __future__ import annotations

import datetime as dt

import asyncpg
from structlog.testing import capture_logs

from suishen.central.derive import derive_ingested
from suishen.central.ingest import ingest
from suishen.sync.wire import SCAN_COLUMNS, encode_batch, parse_batch

from .hubkit import NOW, SITE, person, register, scan_row

OLD, NEW = "00000000000000aa", "00000000000000bb"


def parsed(rows: list[dict], journal_id: str):
    return parse_batch(encode_batch("gw-1", rows, journal_id=journal_id), bound_gateway_id="gw-1")


async def test_fresh_batch_whose_visit_key_is_held_is_stored_with_every_write_checked(
    db_pool: asyncpg.Pool,
) -> None:
    """A recreated journal (NEW) whose first in has the very seq and ts of the old journal's
    (OLD) in, for the same person, and an out after it: its scans are new rows, and so are
    its visits (keyed with the journal, as scans are): the batch is stored whole and answered
    with its high water (before 0016 the two ins shared a visit key and the derivation's
    upsert met it twice: the batch failed, every resend too).  The old journal's visit ends at
    the new in (reentry), the new one at the out."""
    await register(db_pool, "gw-1")
    old = await ingest(db_pool, parsed([scan_row(1, ts=NOW - 30)], OLD))
    assert (old.inserted, old.high_water) == (1, 1)
    new_rows = [
        scan_row(1, ts=NOW - 30),
        scan_row(2, ts=NOW - 30, direction="out", person_key=person(1)),
    ]
    new = await ingest(db_pool, parsed(new_rows, NEW))
    assert (new.inserted, new.duplicates, new.high_water, new.rejected) == (2, 0, 2, ())
    assert await db_pool.fetchval("SELECT count(*) FROM scans") == 3
    visits = await db_pool.fetch(
        "SELECT in_journal_id, in_seq, out_seq, close_reason FROM visits ORDER BY in_journal_id"
    )
    assert [tuple(r) for r in visits] == [(OLD, 1, None, "reentry"), (NEW, 1, 2, "out")]


async def test_fresh_batch_pairs_its_ins_and_outs_into_visits(db_pool: asyncpg.Pool) -> None:
    """A batch above the high water (the unchecked insert): each in paired with the same
    person's out in the batch, a denied out leaves its visit open, a resend writes nothing
    new."""
    await register(db_pool, "gw-1")
    rows = [
        scan_row(1),
        scan_row(2, direction="out", person_key=person(1)),
        scan_row(3),
        scan_row(4, direction="out", person_key=person(3), verdict="deny", reason="status_red"),
    ]
    assert (await ingest(db_pool, parsed(rows, OLD))).inserted == 4
    assert (await ingest(db_pool, parsed(rows, OLD))).duplicates == 4
    visits = await db_pool.fetch("SELECT in_seq, out_seq, close_reason FROM visits ORDER BY in_seq")
    assert [tuple(r) for r in visits] == [(1, 2, "out"), (3, None, None)]


async def test_fresh_batch_meeting_a_held_visit_key_is_stored_with_every_write_checked(
    db_pool: asyncpg.Pool,
) -> None:
    """A visit the hub holds without its scan (restored from a backup, say) keyed by a fresh
    batch's in: the batch's unchecked insert meets the key, and the batch is stored all the
    same - again, with every write checked (said in the log) - never answered 500; the held
    visit takes the batch's end (the upsert)."""
    await register(db_pool, "gw-1")
    rows = [scan_row(1), scan_row(2, direction="out", person_key=person(1))]
    in_ts = parsed(rows, OLD).scans[0][2]
    await db_pool.execute(
        "INSERT INTO visits (site_id, person_key, in_gateway_id, in_journal_id, in_seq, in_ts) "
        "VALUES ($4, $1, 'gw-1', $2, 1, $3)",
        person(1),
        OLD,
        in_ts,
        SITE,
    )
    with capture_logs() as logs:
        result = await ingest(db_pool, parsed(rows, OLD))
    assert (result.inserted, result.duplicates, result.high_water, result.rejected) == (
        2, 0, 2, ()
    )  # fmt: skip
    assert any("held key" in entry["event"] for entry in logs), logs
    visits = await db_pool.fetch("SELECT in_seq, out_seq, close_reason FROM visits")
    assert [tuple(r) for r in visits] == [(1, 2, "out")]


async def test_recreated_journal_checkin_at_the_old_seq_and_ts_is_its_own_stay(
    db_pool: asyncpg.Pool,
) -> None:
    """At a hotel, a recreated journal (NEW) whose first checkin has the very seq and ts of the
    old journal's (OLD) checkin, for the same guest, then a checkout: its scans are new rows,
    and so are its stays (keyed with the journal, as scans and visits are): the batch is stored
    whole and answered with its high water (before 0017 the two checkins shared a stay key and
    the derivation's upsert met it twice: the batch failed, every resend too).  The old
    journal's stay ends at the new checkin (reentry), the new one at the checkout."""
    hotel = "hotel-1"
    await register(db_pool, "gw-1", hotel, kind="hotel")
    checkin = scan_row(1, site_id=hotel, ts=NOW - 30, direction="checkin")
    old = await ingest(db_pool, parsed([checkin], OLD))
    assert (old.inserted, old.high_water) == (1, 1)
    checkout = scan_row(2, site_id=hotel, ts=NOW - 30, direction="checkout", person_key=person(1))
    for _attempt in range(2):  # the resend is answered the same
        new = await ingest(db_pool, parsed([checkin, checkout], NEW))
        assert (new.high_water, new.rejected) == (2, ())
    assert await db_pool.fetchval("SELECT count(*) FROM scans") == 3
    stays = await db_pool.fetch(
        "SELECT checkin_journal_id, checkin_seq, checkout_seq, close_reason FROM stays "
        "ORDER BY checkin_journal_id"
    )
    assert [tuple(r) for r in stays] == [(OLD, 1, None, "reentry"), (NEW, 1, 2, "out")]


async def test_the_derivation_statement_is_planned_once_per_connection_not_per_batch(
    db_pool: asyncpg.Pool,
) -> None:
    """Issue 12: the set-based derivation statement (derive_sql.py) is prepared once per
    connection and runs its generic plan for every batch after, never re-planned per batch
    (PostgreSQL's own choice kept a custom plan for it: about 1 ms of planning per batch on
    the server, a tenth of the statement).  Six batches of an in and its out, derived on one
    connection: every batch's visit is there, and the statement's plan counts in
    pg_prepared_statements show no custom plan."""
    await register(db_pool, "gw-1")
    async with db_pool.acquire() as con:
        for n in range(6):
            rows = [
                scan_row(2 * n + 1),
                scan_row(2 * n + 2, direction="out", person_key=person(2 * n + 1)),
            ]
            scans = parsed(rows, OLD).scans
            async with con.transaction():
                await con.copy_records_to_table("scans", records=scans, columns=SCAN_COLUMNS)
                assert await derive_ingested(con, SITE, scans, now=dt.datetime.now(dt.UTC)) == 1
        plans = await con.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%WITH b AS MATERIALIZED%' "
            "AND statement NOT LIKE '%pg_prepared_statements%'"
        )
    assert [tuple(r) for r in plans] == [(6, 0)]
    visits = await db_pool.fetch("SELECT in_seq, out_seq, close_reason FROM visits ORDER BY 1")
    assert [tuple(r) for r in visits] == [(2 * n + 1, 2 * n + 2, "out") for n in range(6)]
