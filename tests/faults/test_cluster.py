"""The fault-test harness itself: a PostgreSQL that restarts in place, a real gateway process
writing its journal, and compare() catching every kind of discrepancy it exists to catch."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from suishen.sync.wire import (
    ALERT_COLUMNS,
    DEVICE_COLUMNS,
    PASSAGE_COLUMNS,
    SCAN_COLUMNS,
    encode_batch,
    parse_batch,
)
from tests.faults.cluster import compare
from tests.faults.nodes import GatewayNode, ScanDriver
from tests.faults.postgres import PostgresServer, wait_postgres


async def test_postgres_restarts_in_place(postgres: PostgresServer, fault_dsn: str) -> None:
    """An immediate-mode restart kills every backend (an open connection breaks) and recovers
    on the same address with every committed row intact."""
    con = await asyncpg.connect(fault_dsn)
    try:
        await con.execute("CREATE TABLE probe (n int)")
        await con.execute("INSERT INTO probe SELECT generate_series(1, 100)")
        before = postgres.restarts
        await asyncio.to_thread(postgres.restart, "immediate")
        assert postgres.restarts == before + 1
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await con.fetchval("SELECT count(*) FROM probe")
    finally:
        await con.close()
    await wait_postgres(fault_dsn)
    con = await asyncpg.connect(fault_dsn)
    try:
        assert await con.fetchval("SELECT count(*) FROM probe") == 100
    finally:
        await con.close()


# A scan stored again 1 ms later: the same key but for ts, so a second row.
_SHIFTED = ", ".join("ts + interval '1 ms'" if c == "ts" else c for c in SCAN_COLUMNS)
STORE_AGAIN_1MS_LATER = (
    f"INSERT INTO scans ({', '.join(SCAN_COLUMNS)}) SELECT {_SHIFTED} "
    "FROM scans WHERE gateway_id = 'gw-cmp' AND seq = $1"
)


def journal_id(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()[0])
    finally:
        db.close()


def journal_rows(path: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM events ORDER BY seq")]
        epochs = dict(db.execute("SELECT epoch_id, ephemeral_public FROM epochs"))
    finally:
        db.close()
    for row in rows:
        row["epoch_public"] = epochs.get(row["epoch_id"])
        if row["minor"] is not None:
            row["minor"] = bool(row["minor"])
    return rows


async def load_central(dsn: str, gateway_id: str, rows: list[dict], journal_id: str) -> None:
    """Put journal rows into the central tables the way the hub's ingest lays them out (the
    wire format's own parser), without any hub: the reference for compare()."""
    body = json.loads(json.dumps(encode_batch(gateway_id, rows, journal_id=journal_id)))
    batch = parse_batch(body, bound_gateway_id=gateway_id, max_rows=len(rows))
    assert not batch.rejected, batch.rejected
    con = await asyncpg.connect(dsn)
    try:
        for table, columns, records in (
            ("scans", SCAN_COLUMNS, batch.scans),
            ("passages", PASSAGE_COLUMNS, batch.passages),
            ("alerts", ALERT_COLUMNS, batch.alerts),
            ("device_events", DEVICE_COLUMNS, batch.devices),
        ):
            if records:
                await con.copy_records_to_table(table, records=records, columns=columns)
    finally:
        await con.close()


async def test_compare_finds_lost_duplicated_and_extra(tmp_path: Path, fault_dsn: str) -> None:
    """A real gateway process journals scans and passages; loaded centrally they compare
    exact. Then one row deleted is lost, one stored twice (another ts) is duplicated, one
    from nowhere is extra, and moving a passage into scans is both lost and extra."""
    node = await GatewayNode.create(tmp_path / "gw", "gw-cmp")
    try:
        await node.start()
        driver = ScanDriver(node, rate_hz=20)
        driver.start()
        await asyncio.sleep(1.0)
        await driver.stop()
        await asyncio.sleep(0.5)  # the last passages
        assert await node.process.terminate() == 0
    finally:
        await node.aclose()
    rows = journal_rows(node.journal_path)
    kinds = {r["kind"] for r in rows}
    assert {"scan", "passage"} <= kinds, kinds
    jid = journal_id(node.journal_path)
    gw = f"gw-cmp/{jid}"
    await load_central(fault_dsn, "gw-cmp", rows, jid)

    result = await compare([node.journal_path], fault_dsn)
    assert result.exact, result.summary()
    assert result.journal_rows == result.central_rows == len(rows)

    scans = [r for r in rows if r["kind"] == "scan"]
    passages = [r for r in rows if r["kind"] == "passage"]
    con = await asyncpg.connect(fault_dsn)
    try:
        gone, twice = scans[0]["seq"], scans[1]["seq"]
        await con.execute("DELETE FROM scans WHERE gateway_id = 'gw-cmp' AND seq = $1", gone)
        await con.execute(
            STORE_AGAIN_1MS_LATER,
            twice,
        )
        await con.execute(
            "INSERT INTO device_events (gateway_id, seq, ts, site_id) "
            "VALUES ('gw-cmp', 999999, now(), 'site-building'), "
            "('gw-other', 1, now(), 'site-x')"
        )
        moved = passages[0]["seq"]
        await con.execute(
            "WITH p AS (DELETE FROM passages WHERE gateway_id = 'gw-cmp' AND seq = $1 "
            "RETURNING *) INSERT INTO device_events (gateway_id, seq, ts, site_id, journal_id) "
            "SELECT gateway_id, seq, ts, site_id, journal_id FROM p",
            moved,
        )
    finally:
        await con.close()
    result = await compare([node.journal_path], fault_dsn)
    assert result.lost == [(gw, s) for s in sorted((gone, moved))]
    assert result.duplicated == [(gw, twice)]
    assert result.extra == sorted([("gw-cmp", 999999), ("gw-other", 1), (gw, moved)])
    assert result.counts() == (2, 1, 3)
    assert not result.exact
