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


async def load_central(dsn: str, gateway_id: str, rows: list[dict]) -> None:
    """Put journal rows into the central tables the way the hub's ingest lays them out (the
    wire format's own parser), without any hub: the reference for compare()."""
    body = json.loads(json.dumps(encode_batch(gateway_id, rows)))
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
    await load_central(fault_dsn, "gw-cmp", rows)

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
            "INSERT INTO scans SELECT gateway_id, seq, ts + interval '1 ms', site_id, lane_id, "
            "direction, format, verdict, reason, person_key, nationality, minor, status, "
            "masked_name, masked_number, cti, kid, zone, latency_us, identity_sealed, epoch_id "
            "FROM scans WHERE gateway_id = 'gw-cmp' AND seq = $1",
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
            "RETURNING *) INSERT INTO device_events (gateway_id, seq, ts, site_id) "
            "SELECT gateway_id, seq, ts, site_id FROM p",
            moved,
        )
    finally:
        await con.close()
    result = await compare([node.journal_path], fault_dsn)
    assert result.lost == [("gw-cmp", s) for s in sorted((gone, moved))]
    assert result.duplicated == [("gw-cmp", twice)]
    assert result.extra == sorted([("gw-cmp", 999999), ("gw-other", 1), ("gw-cmp", moved)])
    assert result.counts() == (2, 1, 3)
    assert not result.exact
