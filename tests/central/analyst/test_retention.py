"""Retention on real PostgreSQL: exactly the partitions past their limit are dropped (stays by
their own), alerts and audit rows past theirs are deleted, each run is audited and logged."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from suishen.central import partitions
from suishen.central.retention import RetentionPolicy, maintain, run_retention, status
from suishen.central.store.audit import record
from tests.central.conftest import TODAY

NOW = dt.datetime.combine(TODAY, dt.time(3), tzinfo=dt.UTC)


async def _days(con: asyncpg.Connection, table: str) -> set[dt.date]:
    return {day for _name, day in await partitions.list_partitions(con, table)}


async def test_each_table_keeps_exactly_its_days(con: asyncpg.Connection) -> None:
    """With days=10 and stays_days=20: scans, passages, device events and visits keep
    TODAY-10 .. and lose TODAY-11 ..; stays keep TODAY-20 and lose TODAY-21; the run's
    audit row lists what went."""
    old = [TODAY - dt.timedelta(days=d) for d in (9, 10, 11, 12, 20, 21, 25)]
    for table in partitions.PARTITIONED_TABLES:
        await partitions.ensure_partitions_for(con, table, old)
    run = await run_retention(con, now=NOW, policy=RetentionPolicy(days=10, stays_days=20))
    for table in ("scans", "passages", "device_events", "visits"):
        kept = {d for d in await _days(con, table) if d < TODAY}
        assert kept == {TODAY - dt.timedelta(days=d) for d in (1, 9, 10)}, table
    stays = {d for d in await _days(con, "stays") if d < TODAY}
    assert stays == {TODAY - dt.timedelta(days=d) for d in (1, 9, 10, 11, 12, 20)}
    expected = sorted(
        [
            partitions.partition_name(t, TODAY - dt.timedelta(days=d))
            for t in ("scans", "passages", "device_events", "visits")
            for d in (11, 12, 20, 21, 25)
        ]
        + [partitions.partition_name("stays", TODAY - dt.timedelta(days=d)) for d in (21, 25)]
    )
    assert run.dropped == expected
    row = await con.fetchrow("SELECT actor, action, target FROM audit WHERE audit_id = $1",
                             run.audit_id)  # fmt: skip
    assert (row["actor"], row["action"]) == ("system", "retention")
    assert partitions.partition_name("stays", TODAY - dt.timedelta(days=21)) in row["target"]
    again = await run_retention(con, now=NOW, policy=RetentionPolicy(days=10, stays_days=20))
    assert again.dropped == []


async def test_alerts_and_audit_are_kept_by_their_own_settings(con: asyncpg.Connection) -> None:
    """An alert and an audit row older than their limits go; newer ones stay."""
    for age in (5, 50):
        await con.execute(
            "INSERT INTO alerts (gateway_id, seq, ts, site_id, kind, route) "
            "VALUES ('gw', $1, $2, 's', 'watchlist', 'police')",
            age,
            NOW - dt.timedelta(days=age),
        )
        audit_id = await record(con, "ana", "export", what="x")
        await con.execute(
            "UPDATE audit SET ts = $2 WHERE audit_id = $1", audit_id, NOW - dt.timedelta(days=age)
        )
    run = await run_retention(
        con, now=NOW, policy=RetentionPolicy(keep_alerts_days=30, keep_audit_days=40)
    )
    assert (run.alerts_deleted, run.audit_deleted) == (1, 1)
    assert await con.fetchval("SELECT array_agg(seq) FROM alerts") == [5]
    assert await con.fetchval("SELECT count(*) FROM audit WHERE action = 'export'") == 1


async def test_status_and_the_hub_pass(db_pool: asyncpg.Pool) -> None:
    """maintain() creates ahead, runs retention (audited) and status() reports it."""
    async with db_pool.acquire() as con:
        await partitions.ensure_partitions_for(con, "scans", [TODAY - dt.timedelta(days=40)])
    policy = RetentionPolicy(days=28, stays_days=60)
    created, dropped = await maintain(
        db_pool, now=NOW, policy=partitions.PartitionPolicy(), retention=policy
    )
    assert created == []  # the template already holds the days ahead
    assert dropped == [partitions.partition_name("scans", TODAY - dt.timedelta(days=40))]
    async with db_pool.acquire() as con:
        report = await status(con, policy=policy)
    by_table = {t.table: t for t in report.tables}
    assert by_table["stays"].keep_days == 60 and by_table["scans"].keep_days == 28
    assert by_table["scans"].oldest_day == TODAY - dt.timedelta(days=1)
    assert report.last_run_at is not None and report.last_run_dropped == dropped


def test_policy_refuses_zero_days() -> None:
    """A retention of 0 days is a mistake, not a setting."""
    with pytest.raises(ValueError, match="at least 1 day"):
        RetentionPolicy(stays_days=0)


async def test_invitations_are_kept_as_long_as_scans(con: asyncpg.Connection) -> None:
    """An invitation (a person key) whose window ended, or that was cancelled, more than
    `days` ago is deleted; one still inside the limit, and a live one, stay."""
    await con.execute("INSERT INTO sites (site_id, kind) VALUES ('tower', 'building')")
    day = dt.timedelta(days=1)
    cases = {  # name: (valid_from, valid_until, cancelled_at)
        "ended-long-ago": (NOW - 40 * day, NOW - 39 * day, None),
        "cancelled-long-ago": (NOW - 12 * day, NOW + 30 * day, NOW - 11 * day),
        "ended-recently": (NOW - 9 * day, NOW - 8 * day, None),
        "live": (NOW - day, NOW + day, None),
    }
    for n, (name, (start, end, cancelled)) in enumerate(cases.items()):
        await con.execute(
            "INSERT INTO invitations (site_id, person_key, masked_name, valid_from, valid_until,"
            " version, created_by, cancelled_at, cancelled_by) "
            "VALUES ('tower', $1, $2, $3, $4, 1, 'test', $5, $6)",
            f"{n:064x}", name, start, end, cancelled, None if cancelled is None else "test",
        )  # fmt: skip
    run = await run_retention(con, now=NOW, policy=RetentionPolicy(days=10))
    left = {r["masked_name"] for r in await con.fetch("SELECT masked_name FROM invitations")}
    assert left == {"ended-recently", "live"}
    assert run.invitations_deleted == 2
    target = await con.fetchval("SELECT target FROM audit WHERE audit_id = $1", run.audit_id)
    assert '"invitations_deleted": 2' in target
