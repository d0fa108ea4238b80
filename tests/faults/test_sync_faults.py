"""Sync under faults, with real processes (issue 5 item 8; DESIGN §6 "exactly-once in effect").

Every scenario runs PostgreSQL, the hub (``suishen hub run``) and gateways (``suishen gateway
run``) as real processes, each gateway fed valid codes by pty scanner simulators at a steady
rate (scans, passages from the Modbus turnstile simulators, watchlist alerts), and each ends
with ``compare()``: per (gateway_id, seq), every journal row is in its central table exactly
once and nothing central lacks a journal row: zero lost, zero duplicated, zero extra.

Durations are shorter than the issue's where the point stands anyway (CI must finish fast);
each test says what it shortened.  The test gateways back off at most 2 s (default 30 s) and
give up on a request after 3 s (default 15 s): SyncTuning in cluster.py.  What each scenario
measured is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.faults.cluster import Cluster, Comparison, wait_synced
from tests.faults.nodes import GatewayNode, log_events, open_journal
from tests.faults.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# What PostgreSQL logs when a client goes away inside a transaction (then rolled back).
OPEN_TRANSACTION_EOF = "unexpected EOF on client connection with an open transaction"
RATE_HZ = 10.0  # scans per second per gateway (each allowed scan also makes a passage)
SETTLE_TIMEOUT_S = 60.0


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took.  Fails with ``what`` on timeout."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


# Bytes towards the hub that only an upload batch makes: a bundle long-poll, a TLS handshake or
# a fast-lane alert is well under this; a batch of the backlogs built here is many times it.
BATCH_BYTES = 8192


async def upload_starts(cluster: Cluster, timeout_s: float = 15.0) -> float:
    """Until an upload batch is on its way to the hub through some proxy."""
    base = cluster.bytes_up()
    return await until(
        lambda: cluster.bytes_up() > base + BATCH_BYTES, timeout_s, "an upload to start"
    )


def resent_rows(cluster: Cluster) -> int:
    """At least this many rows reached the hub's bulk ingest again after they were stored:
    the duplicates its batches found (its debug line per batch) less the alerts the fast lane
    had stored first (those come back with the bulk upload by design)."""
    hub = cluster.hub.process
    duplicates = sum(int(e.get("duplicates", 0)) for e in log_events(hub, "ingested"))
    fast_lane = sum(int(e.get("stored", 0)) for e in log_events(hub, "alerts_stored"))
    return max(0, duplicates - fast_lane)


# asyncpg's pool logs this warning with a traceback while PostgreSQL is away (it keeps trying
# to reopen min_size connections); it is not an error of ours.
POOL_FLOOR_WARNING = "WARNING:asyncpg.pool:Failed to restore the pool connection floor"


def unexpected_tracebacks(text: str) -> int:
    lines = text.splitlines()
    return sum(
        1
        for i, line in enumerate(lines)
        if line.startswith("Traceback") and not (i and lines[i - 1].startswith(POOL_FLOOR_WARNING))
    )


def assert_exact(cluster: Cluster, result: Comparison, name: str, **facts: object) -> None:
    lost, duplicated, extra = result.counts()
    line = " ".join(f"{k}={v}" for k, v in facts.items())
    print(f"\n[{name}] {result.summary()} {line}")
    assert result.journal_rows > 0
    assert (lost, duplicated, extra) == (0, 0, 0), f"{result.summary()}\n{cluster.logs()}"
    assert not result.mismatched, result.summary()
    assert not result.quarantined, result.summary()
    assert {"scan", "passage", "alert"} <= set(result.by_kind), result.by_kind
    for process in [cluster.hub.process, *(node.process for node in cluster.nodes)]:
        assert not unexpected_tracebacks(process.log_text()), process.log_tail()


async def central_high(dsn: str, gateway_id: str) -> int:
    """The highest seq of a gateway's scans and passages in the centre (0: none); alerts are
    left out, the fast lane stores them ahead of the bulk upload."""
    con = await asyncpg.connect(dsn)
    try:
        return int(
            await con.fetchval(
                "SELECT coalesce(max(seq), 0) FROM (SELECT seq FROM scans WHERE gateway_id = $1 "
                "UNION ALL SELECT seq FROM passages WHERE gateway_id = $1) s",
                gateway_id,
            )
        )
    finally:
        await con.close()


async def central_count(dsn: str) -> int:
    con = await asyncpg.connect(dsn)
    try:
        return int(
            await con.fetchval(
                "SELECT (SELECT count(*) FROM scans) + (SELECT count(*) FROM passages)"
            )
        )
    finally:
        await con.close()


async def storing(dsn: str, timeout_s: float = 15.0) -> None:
    """Until the centre receives new rows (the hub is up and the gateways reach it)."""
    base = await central_count(dsn)
    deadline = time.monotonic() + timeout_s
    while await central_count(dsn) <= base:
        assert time.monotonic() < deadline, "the centre receives nothing"
        await asyncio.sleep(0.02)


async def stored_beyond(
    dsn: str, nodes: list[GatewayNode], before: dict[str, int], timeout_s: float = 15.0
) -> None:
    """Until some gateway's scans or passages in the centre go beyond ``before``."""
    deadline = time.monotonic() + timeout_s
    while True:
        for node in nodes:
            if await central_high(dsn, node.gateway_id) > before[node.gateway_id]:
                return
        assert time.monotonic() < deadline, "no batch stored while the answers were held"
        await asyncio.sleep(0.02)


def sync_cursor(node: GatewayNode) -> int:
    db = open_journal(node.journal_path)
    try:
        return int(db.execute("SELECT acked_seq FROM sync_cursor").fetchone()[0])
    finally:
        db.close()


# --------------------------------------------------------------------------- (a) hub down


async def test_hub_down_while_five_gateways_keep_scanning(make_cluster) -> None:
    """Five gateways keep scanning while the hub is stopped; every gateway decides offline and
    journals, its backlog grows; when the hub returns the backlogs drain and the centre holds
    every row exactly once.  The issue says 60 s down; 20 s here (CI time): at 10 scans/s a
    gateway still piles up ~400 rows, more than a batch's worth of backlog to drain."""
    down_s = 20.0
    cluster: Cluster = await make_cluster(gateways=5, rate_hz=RATE_HZ)
    cluster.start_scanning()
    await asyncio.sleep(3.0)
    assert await cluster.hub.stop() == 0
    await asyncio.sleep(down_s)
    backlogs = [(await node.status())["journal"]["backlog"] for node in cluster.nodes]
    assert min(backlogs) >= down_s * RATE_HZ, backlogs  # scans alone; passages come on top
    came_back = time.monotonic()
    await cluster.hub.start()
    await asyncio.sleep(2.0)  # scanning goes on while the backlog drains
    result, _ = await cluster.settle(SETTLE_TIMEOUT_S)
    assert_exact(
        cluster,
        result,
        "hub down",
        down_s=down_s,
        backlog_at_return=sum(backlogs),
        drained_after_return_s=round(time.monotonic() - came_back, 2),
        undelivered_scans=sum(d.undelivered for d in cluster.drivers),
    )


# --------------------------------------------------------------------------- (b) hub kill -9


async def test_hub_killed_mid_batch_repeatedly(
    make_cluster, fault_dsn: str, postgres: PostgresServer
) -> None:
    """kill -9 of the hub with a batch in flight, four times, each followed by 1.5 s down
    while the gateways keep journalling:

    1. and 4. at a random moment, 0-150 ms after a batch's bytes start towards the hub;
    2. inside the ingest transaction: the hub reaches PostgreSQL through a proxy whose trap
       stalls hub -> PostgreSQL once a batch's worth of bytes (the COPY) went up, so the
       INSERT and COMMIT that follow never arrive; killed there, PostgreSQL logs the end of
       a connection with an open transaction and rolls it back;
    3. after a commit whose answer is lost: after 1.5 s of cut links (a backlog) the
       gateways' links let the next batch up and hold the hub's answers; once a batch is
       stored the hub is killed and the links reset (the centre then holds seqs beyond that
       gateway's sync cursor).

    Every batch is sent again from the gateways' cursors; the hub inserts nothing twice."""
    down_s = 1.5
    rng = random.Random(5)
    cluster: Cluster = await make_cluster(gateways=3, rate_hz=RATE_HZ, db_proxy=True)
    db_link = cluster.db_proxy
    assert db_link is not None
    cluster.start_scanning()
    await asyncio.sleep(2.0)
    outstanding = []

    async def kill_then_return() -> None:
        await cluster.hub.kill9()
        outstanding.append(await cluster.backlog())  # rows not central when it died
        await cluster.drop_all()  # whatever the dead hub's sockets still held
        await cluster.resume_all()
        await db_link.drop(reset=False)  # PostgreSQL sees EOF: it logs an open transaction
        await db_link.resume()
        await asyncio.sleep(down_s)
        await cluster.hub.start()

    # 1. a random moment in an upload
    await upload_starts(cluster)
    await asyncio.sleep(rng.uniform(0.0, 0.15))
    await kill_then_return()
    # 2. between the COPY and the COMMIT: a backlog, then the trap, then the links back
    await storing(fault_dsn)
    await cluster.refuse_all()
    await asyncio.sleep(1.5)
    tripped = db_link.stall_after(BATCH_BYTES // 2, down=False)
    await cluster.resume_all()
    async with asyncio.timeout(15):
        await tripped.wait()
    await asyncio.sleep(0.1)  # the hub waits on PostgreSQL, mid-transaction
    open_before = postgres.log_text().count(OPEN_TRANSACTION_EOF)
    await kill_then_return()
    await until(
        lambda: postgres.log_text().count(OPEN_TRANSACTION_EOF) > open_before,
        5.0,
        "PostgreSQL to see an ingest transaction cut off",
    )
    # 3. a committed batch whose answer dies with the hub: a backlog, then traps that hold
    # the hub's answers once a batch's bytes went up (after the TLS handshakes, which are small)
    await storing(fault_dsn)
    await cluster.refuse_all()
    await asyncio.sleep(1.5)
    before = {n.gateway_id: await central_high(fault_dsn, n.gateway_id) for n in cluster.nodes}
    traps = [proxy.stall_after(BATCH_BYTES, up=False) for proxy in cluster.proxies.values()]
    await cluster.resume_all(disarm=False)
    await stored_beyond(fault_dsn, cluster.nodes, before)
    await cluster.hub.kill9()
    assert any(trap.is_set() for trap in traps)
    unacknowledged = max(
        [await central_high(fault_dsn, n.gateway_id) - sync_cursor(n) for n in cluster.nodes]
    )
    await kill_then_return()
    # 4. a random moment again
    await upload_starts(cluster)
    await asyncio.sleep(rng.uniform(0.0, 0.15))
    await kill_then_return()

    result, drain_s = await cluster.settle(SETTLE_TIMEOUT_S)
    assert unacknowledged > 0
    assert_exact(
        cluster,
        result,
        "hub kill -9",
        kills=4,
        rows_outstanding_at_kills=outstanding,
        stored_but_unacknowledged_seqs=unacknowledged,
        resent_rows_at_least=resent_rows(cluster),
        drain_s=round(drain_s, 2),
    )


# --------------------------------------------------------------------------- (c) PostgreSQL


async def test_postgres_restarted_mid_ingest(make_cluster, postgres: PostgresServer) -> None:
    """PostgreSQL restarted three times while the hub ingests a backlog (built by cutting the
    gateways' links for 2 s): twice in immediate mode (every backend killed, no checkpoint,
    crash recovery), once in fast mode.  Ingest transactions die with their connections; the
    hub answers 503, the gateways back off and resend, the hub keeps running, nothing is lost
    or doubled."""
    cluster: Cluster = await make_cluster(gateways=3, rate_hz=RATE_HZ)
    cluster.start_scanning()
    await asyncio.sleep(2.0)
    restarted_s = []
    for mode in ("immediate", "fast", "immediate"):
        await cluster.refuse_all()
        await asyncio.sleep(2.0)
        await cluster.resume_all()
        await upload_starts(cluster)
        started = time.monotonic()
        await asyncio.to_thread(postgres.restart, mode)
        restarted_s.append(round(time.monotonic() - started, 2))
        await asyncio.sleep(2.0)
        assert cluster.hub.running, cluster.hub.process.log_tail()
    result, drain_s = await cluster.settle(SETTLE_TIMEOUT_S)
    failed = log_events(cluster.hub.process, "ingest_failed")
    assert_exact(
        cluster,
        result,
        "postgres restart",
        restarts=len(restarted_s),
        restart_s=restarted_s,
        ingest_503=len(failed),
        resent_rows_at_least=resent_rows(cluster),
        drain_s=round(drain_s, 2),
    )
    assert cluster.hub.running


# --------------------------------------------------------------------------- (d) gateway kill -9


async def test_gateway_killed_mid_upload(make_cluster, fault_dsn: str) -> None:
    """kill -9 of a gateway in the middle of an upload, three times (a different gateway each
    time): its link is cut for 1 s (a backlog), then lets the next batch reach the hub but
    holds the answer; the hub stores the batch and the gateway dies before it learns so (the
    centre holds seqs beyond its sync cursor).  Restarted, it sends
    from its cursor again; the hub inserts nothing twice.  A fourth kill lands at a random
    moment while a backlog drains."""
    rng = random.Random(4)
    cluster: Cluster = await make_cluster(gateways=3, rate_hz=RATE_HZ)
    cluster.start_scanning()
    await asyncio.sleep(2.0)
    unacknowledged = []
    for node in cluster.nodes:
        proxy = cluster.proxy(node)
        await proxy.refuse()  # a backlog, so that the next upload is a large batch
        await asyncio.sleep(1.0)
        before = await central_high(fault_dsn, node.gateway_id)
        proxy.stall_after(BATCH_BYTES, up=False)  # that batch reaches the hub, its answer not
        await proxy.resume(disarm=False)
        await stored_beyond(fault_dsn, [node], {node.gateway_id: before})
        await node.kill9()
        unacknowledged.append(await central_high(fault_dsn, node.gateway_id) - sync_cursor(node))
        await proxy.drop()
        await proxy.resume()
        await node.start()
        await asyncio.sleep(1.0)
    # The fourth: a random moment while a backlog drains.
    victim = cluster.nodes[0]
    await cluster.refuse_all()
    await asyncio.sleep(2.0)
    await cluster.resume_all()
    await upload_starts(cluster)
    await asyncio.sleep(rng.uniform(0.0, 0.1))
    await victim.kill9()
    await asyncio.sleep(0.5)
    await victim.start()
    result, drain_s = await cluster.settle(SETTLE_TIMEOUT_S)
    assert all(n > 0 for n in unacknowledged), unacknowledged
    assert_exact(
        cluster,
        result,
        "gateway kill -9",
        kills=len(unacknowledged) + 1,
        stored_but_unacknowledged_seqs=unacknowledged,
        resent_rows_at_least=resent_rows(cluster),
        drain_s=round(drain_s, 2),
    )


def journal_alerts(path: Path) -> int:
    db = open_journal(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE kind = 'alert'").fetchone()[0])
    finally:
        db.close()


def set_journal_aside(path: Path, aside: Path) -> None:
    """Checkpoint a stopped gateway's journal into its main file, move that to ``aside`` and
    delete the rest: the gateway finds no journal at its next start."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    aside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, aside)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def test_recreated_journal_loses_no_scan_or_alert(make_cluster, fault_dsn: str) -> None:
    """A gateway's journal is deleted mid-run: the gateway is killed, its journal removed and
    the gateway started again, so seqs restart at 1 (under a new journal id) while the hub
    holds the old journal's seqs 1..N.  Every scan, passage and alert of the new journal
    reaches the hub beside the old journal's (compare() over both files: nothing lost,
    duplicated or extra), none is rejected or flagged as a conflict."""
    cluster: Cluster = await make_cluster(gateways=1, rate_hz=RATE_HZ)
    node = cluster.nodes[0]
    cluster.start_scanning()
    await asyncio.sleep(4.5)  # the watchlisted people come round every 4 s
    first, _ = await cluster.settle(SETTLE_TIMEOUT_S)
    assert first.exact, first.summary()
    await node.kill9()
    old = node.site.root / "old" / "journal.sqlite3"
    set_journal_aside(node.journal_path, old)
    await node.start()
    cluster.start_scanning()
    await asyncio.sleep(4.5)
    await cluster.stop_scanning()
    await asyncio.sleep(0.5)  # the last passages
    result = await wait_synced([old, node.journal_path], fault_dsn, SETTLE_TIMEOUT_S)
    new_alerts = journal_alerts(node.journal_path)
    assert new_alerts > 0
    con = await asyncpg.connect(fault_dsn)
    try:
        conflicts = await con.fetchval("SELECT count(*) FROM ingest_conflicts")
        journals = await con.fetch("SELECT journal_id, high_water FROM gateway_journals")
    finally:
        await con.close()
    assert conflicts == 0
    assert len(journals) == 2, journals  # two journals, each from seq 1, both held
    assert result.journal_rows > first.journal_rows
    assert_exact(
        cluster,
        result,
        "journal recreated",
        old_journal_rows=first.journal_rows,
        new_alerts=new_alerts,
        journals=[(r["journal_id"], r["high_water"]) for r in journals],
    )


# --------------------------------------------------------------------------- (e) the network


async def test_proxy_drops_and_stalls_connections(make_cluster) -> None:
    """The links between gateways and hub misbehave, in turn: connections reset every
    0.2-0.8 s for 6 s; a full stall for 5 s (longer than the gateways' 3 s request deadline);
    answers alone held for 4 s (the hub stores, the gateway times out and resends); new
    connections refused for 3 s; a stall ended by a reset.  The hub and the gateways keep
    running throughout; afterwards everything drains exactly once."""
    rng = random.Random(6)
    cluster: Cluster = await make_cluster(gateways=3, rate_hz=RATE_HZ)
    cluster.start_scanning()
    await asyncio.sleep(2.0)
    resets = 0
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        resets += await cluster.drop_all()
    cluster.stall_all()
    await asyncio.sleep(5.0)
    await cluster.resume_all()
    await asyncio.sleep(1.0)
    cluster.stall_all(up=False)
    await asyncio.sleep(4.0)
    await cluster.resume_all()
    await asyncio.sleep(1.0)
    await cluster.refuse_all()
    await asyncio.sleep(3.0)
    await cluster.resume_all()
    await asyncio.sleep(1.0)
    cluster.stall_all()
    await asyncio.sleep(1.5)
    resets += await cluster.drop_all()
    await cluster.resume_all()
    assert cluster.hub.running
    assert all(node.process.running for node in cluster.nodes)
    result, drain_s = await cluster.settle(SETTLE_TIMEOUT_S)
    assert resets > 0
    assert_exact(
        cluster,
        result,
        "proxy faults",
        connections_reset=resets,
        resent_rows_at_least=resent_rows(cluster),
        drain_s=round(drain_s, 2),
    )
