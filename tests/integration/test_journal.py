"""The gateway journal on a real SQLite file: group commit, durable acknowledgements (kill -9 of
a child process), seq never reused, sealed identities, replay, sync cursor, retention, alarm."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.gateway.journal import (
    Journal,
    JournalClosedError,
    JournalConfig,
    JournalError,
    JournalFullError,
    JournalMismatchError,
    JournalRecordError,
)
from suishen.gateway.records import (
    AlertKind,
    AlertRaised,
    AlertRoute,
    Decision,
    Direction,
    PassageOutcomeKind,
    PassageRecorded,
    Person,
    ScanDecided,
    ScanFormat,
    Verdict,
    WatchLevel,
)
from suishen.protocol.reasons import Reason
from suishen.protocol.sealing import HubOpener, OpenError, raw_public

GW = "gw-test-01"
SITE = "site-1"
NAME = "张三明"
NUMBER = "11010519491231002X"
IDENTITY = {"idt": "RIC", "idn": NUMBER, "nm": NAME, "dob": "1949-12-31", "nat": "CHN"}
PERSON = Person(
    person_key="ab" * 32,
    nationality="CHN",
    minor=False,
    status="G",
    masked_name="张*明",
    masked_number="110***********002X",
)


def scan(
    i: int = 0,
    *,
    ts: float | None = None,
    verdict: Verdict = Verdict.ALLOW,
    reason: Reason | None = None,
    alerts: tuple[AlertRaised, ...] = (),
    identity: bool = True,
) -> ScanDecided:
    return ScanDecided(
        ts=time.time() if ts is None else ts,
        site_id=SITE,
        lane_id=f"lane-{i % 4}",
        direction=Direction.IN if i % 2 == 0 else Direction.OUT,
        format=ScanFormat.SSC1,
        decision=Decision(verdict=verdict, reason=reason, alerts=alerts),
        person=PERSON,
        cti=f"{i:032x}",
        kid="AAAAAAAAAAA=",
        latency_us=100 + i,
        identity_clear=dict(IDENTITY) if identity else None,
    )


@pytest.fixture
def hub() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def make_journal(tmp_path: Path, hub: X25519PrivateKey):
    def make(**config: object) -> Journal:
        cfg = JournalConfig(path=tmp_path / "journal.sqlite3", **config)  # type: ignore[arg-type]
        return Journal(cfg, gateway_id=GW, site_id=SITE, hub_public_key=hub.public_key())

    return make


def test_every_config_field_has_a_default_and_help() -> None:
    """The config loader reads defaults and help text from every JournalConfig field."""
    for f in dataclasses.fields(JournalConfig):
        assert f.default is not dataclasses.MISSING, f.name
        assert f.metadata.get("help"), f.name
    assert JournalConfig().synchronous == "FULL"
    with pytest.raises(ValueError, match="synchronous"):
        JournalConfig(synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alarm_fraction"):
        JournalConfig(alarm_fraction=0)


async def test_group_commit_batches_concurrent_appends(make_journal) -> None:
    """256 concurrent appends are written in a handful of transactions, each with its own seq;
    with max_batch=10 the writer needs at least 26 commits."""
    async with make_journal() as journal:
        seqs = await asyncio.gather(*(journal.append(scan(i, identity=False)) for i in range(256)))
        assert sorted(seqs) == list(range(1, 257))
        assert journal.status().commits <= 4
    async with make_journal(max_batch=10) as journal:
        before = journal.status().commits
        await asyncio.gather(*(journal.append(scan(i, identity=False)) for i in range(256)))
        assert journal.status().commits - before >= 26


async def test_seq_strictly_increasing_across_reopen(make_journal) -> None:
    """seq continues after a reopen, even when retention deleted every row, and skips ahead
    past a seq the hub acknowledged beyond the journal."""
    async with make_journal(retention_days=0) as journal:
        first = [await journal.append(scan(i)) for i in range(5)]
        assert first == [1, 2, 3, 4, 5]
    async with make_journal(retention_days=0) as journal:
        assert await journal.append(scan(5)) == 6
        await journal.mark_synced(6)
        assert await journal.run_retention() == 6
        assert journal.status().rows == 0
    async with make_journal(retention_days=0) as journal:
        assert await journal.append(scan(6)) == 7
        await journal.mark_synced(100)
        assert await journal.append(scan(7)) == 101
    async with make_journal() as journal:
        assert journal.status().synced_seq == 100
        assert await journal.append(scan(8)) == 102


CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys, time
    from pathlib import Path
    import structlog
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from suishen.gateway.journal import Journal, JournalConfig
    from suishen.gateway.records import Decision, Direction, ScanDecided, ScanFormat, Verdict

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    path, hub_hex = sys.argv[1], sys.argv[2]

    async def lane(journal, n):
        while True:
            record = ScanDecided(
                ts=time.time(), site_id="site-1", lane_id=f"lane-{n}", direction=Direction.IN,
                format=ScanFormat.SSC1, decision=Decision(verdict=Verdict.ALLOW, reason=None),
                person=None, identity_clear={"idt": "RIC", "idn": "X1", "nm": "N"},
            )
            seq = await journal.append(record)
            print(f"SEQ {seq}", flush=True)

    async def main():
        hub = X25519PublicKey.from_public_bytes(bytes.fromhex(hub_hex))
        journal = Journal(JournalConfig(path=Path(path)), gateway_id="gw-test-01",
                          site_id="site-1", hub_public_key=hub)
        await journal.start()
        await asyncio.gather(*(lane(journal, n) for n in range(8)))

    asyncio.run(main())
    """
)


async def test_acknowledged_appends_survive_kill_9(tmp_path: Path, make_journal, hub) -> None:
    """A child appends from 8 lanes and prints each seq once append returned; after SIGKILL
    every printed seq is in the journal, and the next seq is above all of them."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "journal.sqlite3"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(db),
        raw_public(hub.public_key()).hex(),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    printed: list[int] = []
    try:
        async with asyncio.timeout(60):
            while len(printed) < 1500:
                line = await child.stdout.readline()
                assert line, "the child stopped early"
                if line.startswith(b"SEQ "):
                    printed.append(int(line.split()[1]))
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(set(printed)) == len(printed)
    async with make_journal() as journal:
        stored = {row.seq for row in await journal.read_unsynced(0, 1_000_000)}
        assert set(printed) <= stored
        assert await journal.append(scan()) > max(stored)
        for row in await journal.read_unsynced(0, 20):
            assert row.identity_sealed is not None
            assert row.epoch_public is not None


def _journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal.sqlite3*"))


def _assert_not_in_files(files: list[Path]) -> None:
    for f in files:
        data = f.read_bytes()
        assert NAME.encode() not in data, f
        assert NUMBER.encode() not in data, f
        assert b"1949-12-31" not in data, f


async def test_identity_is_never_stored_in_clear(tmp_path: Path, make_journal, hub) -> None:
    """The database, WAL and shared-memory files never hold the clear name or number (open
    or closed), nor do the logs; the hub opens each sealed identity for its own seq only."""
    with structlog.testing.capture_logs() as logs:
        journal = make_journal()
        await journal.start()
        seqs = [await journal.append(scan(i)) for i in range(20)]
        files = _journal_files(tmp_path)
        assert any(f.name.endswith("-wal") for f in files)
        _assert_not_in_files(files)
        rows = await journal.read_unsynced(0, 100)
        await journal.close()
    _assert_not_in_files(_journal_files(tmp_path))
    assert NAME not in repr(logs)
    assert NUMBER not in repr(logs)
    opener = HubOpener(hub)
    for seq, row in zip(seqs, rows, strict=True):
        assert row.seq == seq
        assert row.identity_sealed is not None and row.epoch_public is not None
        assert row.masked_name == "张*明"
        opened = opener.open_identity(
            row.identity_sealed, ephemeral_public=row.epoch_public, gateway_id=GW, seq=seq
        )
        assert opened == IDENTITY
        with pytest.raises(OpenError):
            opener.open_identity(
                row.identity_sealed, ephemeral_public=row.epoch_public, gateway_id=GW, seq=seq + 1
            )


async def test_epochs_rotate_and_are_published(make_journal, hub) -> None:
    """A new epoch after epoch_s gets its own id and epochs row; records of both open."""
    async with make_journal(epoch_s=0.05) as journal:
        a = await journal.append(scan(0))
        first = journal.status().epoch_id
        await asyncio.sleep(0.1)
        b = await journal.append(scan(1))
        assert journal.status().epoch_id != first
        rows = {r.seq: r for r in await journal.read_unsynced(0, 10)}
    epochs = {r.epoch_id: r.epoch_public for r in rows.values()}
    assert len(epochs) == 2 and all(public is not None for public in epochs.values())
    opener = HubOpener(hub)
    for seq in (a, b):
        row = rows[seq]
        assert row.epoch_id is not None and row.identity_sealed is not None
        public = epochs[row.epoch_id]
        assert opener.open_identity(
            row.identity_sealed, ephemeral_public=public, gateway_id=GW, seq=seq
        ) == (IDENTITY)


async def test_replay_yields_scans_and_passages_in_seq_order(make_journal) -> None:
    """replay() gives (seq, record) for every scan and passage in seq order, equal to what
    was appended minus identity and alerts; alert rows follow their scan with scan_seq."""
    watch = AlertRaised(
        kind=AlertKind.WATCHLIST,
        route=AlertRoute.POLICE,
        detail="watchlist hit",
        person_key=PERSON.person_key,
        level=WatchLevel.DENY,
    )
    records: list[ScanDecided | PassageRecorded] = [
        scan(0),
        scan(1, verdict=Verdict.DENY, reason=Reason.WATCHLIST, alerts=(watch,)),
        dataclasses.replace(scan(2), person=None, identity_clear=None, cti=None, kid=None),
    ]
    async with make_journal() as journal:
        seqs = [await journal.append(record) for record in records]
        passage = PassageRecorded(
            ts=time.time(),
            site_id=SITE,
            lane_id="lane-0",
            scan_seq=seqs[0],
            outcome=PassageOutcomeKind.PASSED,
            person_key=PERSON.person_key,
        )
        seqs.append(await journal.append(passage))
        records.append(passage)
        device = await journal.append_device(
            ts=time.time(), lane_id="lane-0", device_id="gate-0", state="down"
        )
        rows = {r.seq: r for r in await journal.read_unsynced(0, 100)}
        replayed = await asyncio.to_thread(lambda: list(journal.replay()))
    assert seqs == [1, 2, 4, 5]
    assert rows[3].kind == "alert" and rows[3].scan_seq == 2
    assert json.loads(rows[3].detail or "") == {
        "kind": "watchlist",
        "route": "police",
        "detail": "watchlist hit",
        "level": "deny",
    }
    assert rows[device].kind == "device"
    assert [seq for seq, _ in replayed] == seqs
    expected = [
        dataclasses.replace(r, decision=dataclasses.replace(r.decision, alerts=()))
        if isinstance(r, ScanDecided)
        else r
        for r in records
    ]
    assert [record for _, record in replayed] == expected


async def test_cursor_backlog_and_quarantine(make_journal) -> None:
    """The cursor advances monotonically and persists; backlog and read_unsynced skip
    quarantined rows; quarantining an unknown seq is an error."""
    async with make_journal() as journal:
        t0 = time.time() - 100
        for i in range(10):
            await journal.append(scan(i, ts=t0 + i))
        assert await journal.backlog() == (10, t0)
        await journal.mark_synced(4)
        await journal.mark_synced(2)  # never goes back
        assert journal.status().synced_seq == 4
        assert await journal.backlog() == (6, t0 + 4)
        await journal.quarantine(5, "bad person_key")
        assert await journal.backlog() == (5, t0 + 5)
        assert [r.seq for r in await journal.read_unsynced(4, 3)] == [6, 7, 8]
        assert [(s, r) for s, r, _ in await journal.quarantined()] == [(5, "bad person_key")]
        with pytest.raises(JournalError):
            await journal.quarantine(999, "no such row")
    async with make_journal() as journal:
        assert journal.status().synced_seq == 4
        assert journal.status().unsynced == 6
        assert await journal.backlog() == (5, t0 + 5)


async def test_retention_deletes_only_old_synced_rows(make_journal) -> None:
    """Retention deletes rows that are synced and older than retention_days, never unsynced,
    young or quarantined ones."""
    async with make_journal(retention_days=1, retention_chunk=3) as journal:
        old = time.time() - 3 * 86400
        for i in range(10):
            await journal.append(scan(i, ts=old + i))  # seqs 1..10, old
        for i in range(4):
            await journal.append(scan(i))  # seqs 11..14, young
        await journal.mark_synced(12)
        await journal.quarantine(3, "rejected by hub")
        deleted = await journal.run_retention()
        remaining = [r.seq for r in await journal.read_unsynced(0, 100)]
        assert deleted == 9
        assert remaining == [11, 12, 13, 14]
        assert [s for s, _, _ in await journal.quarantined()] == [3]
        assert journal.status().rows == 5  # 4 young + the quarantined one


async def test_near_full_alarm_then_full_then_recovery(make_journal) -> None:
    """At alarm_fraction the journal logs an error (once), journals an AlertRaised(kind=JOURNAL)
    and shows the flag in status(); when full, append raises JournalFullError and writes
    nothing; after sync and retention it takes appends again and the alarm clears."""
    journal = make_journal(max_rows=100, alarm_fraction=0.5, retention_days=0)
    with structlog.testing.capture_logs() as logs:
        async with journal:
            for i in range(49):
                await journal.append(scan(i, identity=False))
            assert not journal.status().alarm
            await journal.append(scan(49, identity=False))
            assert journal.status().alarm
            alert_rows = [r for r in await journal.read_unsynced(0, 200) if r.kind == "alert"]
            assert len(alert_rows) == 1
            assert json.loads(alert_rows[0].detail or "")["kind"] == "journal"
            acked = [await journal.append(scan(i, identity=False)) for i in range(49)]
            assert journal.status().rows == 100
            with pytest.raises(JournalFullError) as info:
                await journal.append(scan(0, identity=False))
            assert info.value.max_rows == 100
            assert journal.status().full
            assert journal.status().last_seq == acked[-1] == 100
            await journal.mark_synced(100)
            assert await journal.run_retention() == 100
            assert not journal.status().alarm
            assert await journal.append(scan(0, identity=False)) == 101
            assert not journal.status().full
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["journal near full"]


async def test_byte_limit_gives_journal_full_error(make_journal) -> None:
    """With a tiny max_bytes the file fills up: append raises JournalFullError (SQLite's
    SQLITE_FULL translated), and every acknowledged record is still there after reopen."""
    acked: list[int] = []
    async with make_journal(max_bytes=65536) as journal:
        error: JournalFullError | None = None
        for i in range(5000):
            try:
                seq = await journal.append(scan(i))
            except JournalFullError as exc:
                error = exc
                break
            acked.append(seq)
        assert error is not None
        assert len(acked) > 20
        assert journal.status().full and journal.status().alarm
    async with make_journal(max_bytes=65536) as journal:
        rows = await journal.read_unsynced(0, 10_000)
        assert [r.seq for r in rows if r.kind == "scan"] == acked
        assert [json.loads(r.detail or "")["kind"] for r in rows if r.kind == "alert"] == [
            "journal"
        ]
        with pytest.raises(JournalFullError):
            await journal.append(scan())


async def test_close_flushes_queued_appends_and_refuses_new_ones(make_journal) -> None:
    """close() completes every append already queued; later appends raise JournalClosedError."""
    journal = make_journal()
    await journal.start()
    tasks = [asyncio.create_task(journal.append(scan(i))) for i in range(50)]
    await asyncio.sleep(0)
    await journal.close()
    seqs = [t.result() for t in tasks]
    assert sorted(seqs) == list(range(1, 51))
    with pytest.raises(JournalClosedError):
        await journal.append(scan())
    with pytest.raises(JournalClosedError):
        await journal.backlog()
    async with make_journal() as journal:
        assert len(await journal.read_unsynced(0, 100)) == 50


async def test_bad_records_fail_alone(make_journal) -> None:
    """A record that cannot be journalled fails its own append before it is queued."""
    async with make_journal() as journal:
        bad = dataclasses.replace(scan(), identity_clear={"nm": 5})  # type: ignore[dict-item]
        with pytest.raises(JournalRecordError):
            await journal.append(bad)
        with pytest.raises(TypeError):
            await journal.append("not a record")  # type: ignore[arg-type]
        assert await journal.append(scan()) == 1


async def test_journal_of_another_gateway_is_refused(tmp_path: Path, make_journal, hub) -> None:
    """Opening a journal file with another gateway id raises JournalMismatchError."""
    async with make_journal() as journal:
        await journal.append(scan())
    other = Journal(
        JournalConfig(path=tmp_path / "journal.sqlite3"),
        gateway_id="gw-other",
        site_id=SITE,
        hub_public_key=hub.public_key(),
    )
    with pytest.raises(JournalMismatchError):
        await other.start()


async def test_journal_id_is_made_once_kept_and_given_to_older_files(
    tmp_path: Path, make_journal
) -> None:
    """A new journal file gets a random 16-hex journal_id that stays across reopening; a file
    deleted and recreated gets another; a schema-1 file (no journal_id) gets one when opened,
    keeping its rows and its seq."""
    async with make_journal() as journal:
        first = journal.journal_id
        await journal.append(scan())
    assert len(first) == 16
    assert int(first, 16) >= 0
    async with make_journal() as journal:
        assert journal.journal_id == first
    for name in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    async with make_journal() as journal:
        second = journal.journal_id
        assert await journal.append(scan()) == 1
    assert second != first
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:  # back to schema 1
        db.execute("DELETE FROM meta WHERE key = 'journal_id'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    async with make_journal() as journal:
        third = journal.journal_id
        assert third not in ("", second)
        assert journal.status().last_seq == 1
        assert await journal.append(scan()) == 2
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:
        meta = dict(db.execute("SELECT key, value FROM meta"))
    assert (meta["journal_id"], meta["schema_version"]) == (third, "2")


async def test_synced_rows_file_is_plain_sqlite_in_wal(tmp_path: Path, make_journal) -> None:
    """The file is an ordinary WAL-mode SQLite database with the documented tables."""
    async with make_journal() as journal:
        await journal.append(scan())
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "events", "epochs", "sync_cursor", "quarantine"} <= tables
    finally:
        db.close()


async def test_a_batch_that_does_not_fit_fails_whole(make_journal) -> None:
    """SQLite's SQLITE_FULL (here: max_bytes) rolls back the batch: every waiter gets a
    JournalFullError and no row was written; a record that fits is written afterwards."""
    async with make_journal(max_bytes=65536) as journal:
        results = await asyncio.gather(
            *(journal.append(scan(i)) for i in range(200)), return_exceptions=True
        )
        assert all(isinstance(r, JournalFullError) for r in results)
        assert journal.status().rows == 0
        assert await journal.read_unsynced(0, 10) == []
        seq = await journal.append(scan())
        assert seq > 200  # the failed batch's seqs are never handed out again
        assert [r.seq for r in await journal.read_unsynced(0, 10)] == [seq]


async def test_maintenance_runs_retention_and_erases_idle_epoch_keys(make_journal) -> None:
    """The maintenance task deletes synced rows past retention and drops an epoch key once
    its epoch is over, even when no record arrives to rotate it."""
    async with make_journal(maintenance_s=0.02, retention_days=0, epoch_s=0.05) as journal:
        seq = await journal.append(scan())
        assert journal.status().epoch_id is not None
        await journal.mark_synced(seq)
        for _ in range(250):  # up to 5 s
            await asyncio.sleep(0.02)
            if journal.status().rows == 0 and journal.status().epoch_id is None:
                break
        assert journal.status().rows == 0
        assert journal.status().epoch_id is None


async def test_a_hotel_stay_survives_replay(tmp_path: Path) -> None:
    """The stay a check-in joined is journalled, so replay rebuilds the same party (a minor
    checked in with a guardian is still in the guardian's stay after a restart)."""
    config = JournalConfig(path=tmp_path / "journal.sqlite3")
    hub = X25519PrivateKey.generate().public_key()
    decided = ScanDecided(
        ts=1_790_000_000.0,
        site_id="hotel",
        lane_id="desk",
        direction=Direction.CHECKIN,
        format=ScanFormat.MRZ,
        decision=Decision(verdict=Verdict.ALLOW, reason=None, stay_id="room:1203@1790000000.000"),
        person=None,
    )
    async with Journal(config, gateway_id="gw", site_id="hotel", hub_public_key=hub) as journal:
        await journal.append(decided)
        ((_seq, again),) = list(journal.replay())
    assert isinstance(again, ScanDecided)
    assert again.decision.stay_id == "room:1203@1790000000.000"


async def test_a_group_commit_runs_a_few_statements_not_one_per_row(make_journal) -> None:
    """A batch of 40 appends is written by a handful of SQLite statement runs (BEGIN, one
    multi-row INSERT, COMMIT, the size check), not one per row: sqlite3 gives up the GIL at
    every statement run and the writer thread waits for the busy event loop to get it back, so
    per-row runs stretched each commit (and the lanes' scan -> open tail) by up to a wait per
    row.  The rows are all there, in seq order, with their own values."""
    async with make_journal() as journal:
        await journal.append(scan(0))  # the first epoch, caches
        runs: list[str] = []
        journal._db.set_trace_callback(runs.append)  # the writer's connection (idle now)
        seqs = await asyncio.gather(*(journal.append(scan(i)) for i in range(1, 41)))
        journal._db.set_trace_callback(None)
        assert sorted(seqs) == list(range(2, 42))
        assert journal.status().commits == 2
        statements = [sql for sql in runs if not sql.startswith("--")]  # not nested ones
        assert len(statements) <= 5, statements
        rows = await journal.read_unsynced(0)
    assert [row.seq for row in rows] == list(range(1, 42))
    assert [row.cti for row in rows] == [f"{i:032x}" for i in range(41)]
    assert all(row.identity_sealed for row in rows)


async def test_status_counts_the_writer_threads_cpu(make_journal) -> None:
    """status().writer_cpu_s is the writer thread's CPU in group commits: zero before any
    append, positive after some, and growing with more (bench/gateway.py splits a scan's cost
    with it)."""
    async with make_journal() as journal:
        assert journal.status().writer_cpu_s == 0.0
        await asyncio.gather(*(journal.append(scan(i)) for i in range(200)))
        first = journal.status().writer_cpu_s
        assert first > 0
        await asyncio.gather(*(journal.append(scan(i)) for i in range(200)))
        assert journal.status().writer_cpu_s > first
