"""The journal store: SQLite in WAL mode, one writer task, group commit, the sync cursor and
the journal_id (see the package docstring for the design)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeVar

import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from suishen.gateway.journal.config import (
    JournalClosedError,
    JournalConfig,
    JournalError,
    JournalFullError,
    JournalRecordError,
    JournalWriteError,
)
from suishen.gateway.journal.cursor import SyncCursor
from suishen.gateway.journal.retention import Retention
from suishen.gateway.journal.rows import (
    INSERT_CHUNK,
    SELECT,
    alert_row,
    blank,
    insert_rows_sql,
    passage_row,
    record_of,
    row_of,
    scan_row,
    values_of,
)
from suishen.gateway.journal.schema import connect, create_schema, enable_wal
from suishen.gateway.records import AlertKind, AlertRaised, AlertRoute, PassageRecorded, ScanDecided
from suishen.protocol.sealing import Epoch, EpochSealer, SealingError, encode_identity

log = structlog.get_logger("suishen.gateway.journal")

_SQLITE_FULL = 13
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalStatus:
    """A snapshot for /status and /metrics."""

    last_seq: int  # highest seq assigned (0: none yet)
    synced_seq: int  # sync cursor: highest seq the hub acknowledged
    rows: int
    unsynced: int  # rows above the cursor (quarantined ones included)
    alarm: bool
    full: bool  # the last append was refused for lack of room
    commits: int
    appended: int
    epoch_id: str | None
    writer_cpu_s: float = 0.0  # CPU time the writer thread spent in group commits (incl. fsync)


# --------------------------------------------------------------------------- the journal


@dataclass(slots=True)
class _Item:
    rows: list[dict[str, Any]]  # first: the record; then its alert rows
    identity: bytes | None  # CBOR plaintext to seal into the first row
    future: asyncio.Future[int]


class Journal(SyncCursor, Retention):
    """The journal of one gateway.  Use as ``async with Journal(...) as journal:`` or call
    ``await start()`` and ``await close()``.
    """

    def __init__(
        self,
        config: JournalConfig,
        *,
        gateway_id: str,
        site_id: str,
        hub_public_key: X25519PublicKey,
    ) -> None:
        if not gateway_id:
            raise ValueError("gateway_id must not be empty")
        self.config = config
        self.gateway_id = gateway_id
        self.site_id = site_id
        self._journal_id = ""  # read or made when the file is opened (start())
        self._sealer = EpochSealer(hub_public_key, epoch_s=config.epoch_s)
        self._log = log.bind(gateway_id=gateway_id, site_id=site_id)
        # writer-thread state (read-only elsewhere)
        self._db: sqlite3.Connection | None = None
        self._next_seq = 1
        self._cursor = 0
        self._rows = 0
        self._unsynced = 0
        self._used_bytes = 0
        self._page_size = 4096
        self._published: set[str] = set()
        self._epoch_hex: tuple[Epoch | None, str] = (None, "")  # the current epoch's id text
        self._alarm = False
        self._full = False
        self._commits = 0
        self._appended = 0
        self._writer_cpu_s = 0.0
        # event-loop state
        self._reader_db: sqlite3.Connection | None = None
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._queue: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._maintenance_task: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False

    @property
    def journal_id(self) -> str:
        """This journal file's random id (16 hex; "" before start())."""
        return self._journal_id

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Journal:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open (creating if needed) the file, recover the seq and cursor, start the writer."""
        if self._started:
            raise JournalError("the journal is already started")
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="journal-writer")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="journal-reader")
        try:
            await self._write(self._open_writer)
            loop = asyncio.get_running_loop()
            self._reader_db = await loop.run_in_executor(
                self._reader_pool, connect, self.config, True
            )
        except BaseException:
            await self._shutdown_pools()
            raise
        self._started = True
        self._writer_task = asyncio.create_task(self._writer_loop(), name="journal-writer")
        self._maintenance_task = asyncio.create_task(self._maintenance_loop(), name="journal-gc")
        self._log.info(
            "journal opened",
            path=str(self.config.path),
            journal_id=self._journal_id,
            next_seq=self._next_seq,
            synced_seq=self._cursor,
            rows=self._rows,
            synchronous=self.config.synchronous,
        )

    async def close(self) -> None:
        """Flush every queued append, checkpoint the WAL and close.  Idempotent."""
        if not self._started or self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
        if self._writer_task is not None:
            await asyncio.gather(self._writer_task, return_exceptions=True)
        if self._reader_db is not None:
            with contextlib.suppress(sqlite3.Error):
                await asyncio.get_running_loop().run_in_executor(
                    self._reader_pool, self._reader_db.close
                )
        with contextlib.suppress(sqlite3.Error):
            await self._write(self._close_writer)
        await self._shutdown_pools()
        self._log.info("journal closed", last_seq=self._next_seq - 1)

    async def _shutdown_pools(self) -> None:
        for pool in (self._writer_pool, self._reader_pool):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, wait=True)

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        assert self._writer_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, fn, *args)

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._reader_pool is None or not self._started or self._closing:
            raise JournalClosedError("the journal is not open")
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, fn, *args)

    # ------------------------------------------------------------------ appends

    async def append(self, record: ScanDecided | PassageRecorded) -> int:
        """Journal a record; returns its seq once it is committed (durable).

        A ScanDecided's ``decision.alerts`` are journalled in the same transaction as
        ``kind="alert"`` rows (their seqs follow the scan's, ``scan_seq`` points to it).
        Raises JournalFullError / JournalWriteError / JournalClosedError when the record was
        not written: the caller must then keep the gate shut.  Cancelling the await does not
        withdraw a queued record.
        """
        if isinstance(record, ScanDecided):
            rows = [scan_row(record)]
            if record.decision.alerts:
                rows += [
                    alert_row(a, ts=record.ts, site_id=record.site_id, lane_id=record.lane_id)
                    for a in record.decision.alerts
                ]
            identity = None
            if record.identity_clear is not None:
                try:
                    identity = encode_identity(record.identity_clear)
                except SealingError as exc:
                    raise JournalRecordError(f"identity cannot be sealed: {exc}") from exc
        elif isinstance(record, PassageRecorded):
            rows = [passage_row(record)]
            identity = None
        else:
            raise TypeError(f"cannot journal a {type(record).__name__}")
        return await self._enqueue(rows, identity)

    async def append_clock_alert(self, detail: str) -> int:
        """Journal a clock alert (to staff): the hub refused rows for their time (the
        uploader's call, through sync.ports.UploadJournal); returns its seq."""
        alert = AlertRaised(kind=AlertKind.CLOCK, route=AlertRoute.STAFF, detail=detail[:200])
        return await self._enqueue(
            [alert_row(alert, ts=time.time(), site_id=self.site_id, lane_id=None)], None
        )

    async def append_alert(
        self, alert: AlertRaised, *, ts: float, lane_id: str | None = None
    ) -> int:
        """Journal an alert that no scan raised (e.g. an emergency declared); returns its seq."""
        return await self._enqueue(
            [alert_row(alert, ts=ts, site_id=self.site_id, lane_id=lane_id)], None
        )

    async def append_device(
        self, *, ts: float, lane_id: str | None, device_id: str, state: str, detail: str = ""
    ) -> int:
        """Journal a device state change (kind="device"); returns its seq."""
        text = json.dumps({"device_id": device_id, "state": state, "detail": detail})
        row = blank(ts=ts, kind="device", site_id=self.site_id, lane_id=lane_id, detail=text)
        return await self._enqueue([row], None)

    async def _enqueue(self, rows: list[dict[str, Any]], identity: bytes | None) -> int:
        if not self._started or self._closing:
            raise JournalClosedError("the journal is not open")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(rows, identity, future))
        self._wakeup.set()
        return await future

    async def _writer_loop(self) -> None:
        """The one writer task: take everything queued, one transaction, resolve waiters."""
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._queue[: self.config.max_batch]
                del self._queue[: len(batch)]
                try:
                    results = await self._write(self._write_batch, batch)
                # Any failure fails this batch's waiters, never the writer task.
                except Exception as exc:  # noqa: BLE001
                    error = (
                        exc
                        if isinstance(exc, JournalError)
                        else JournalWriteError(f"journal write failed: {exc}")
                    )
                    self._log.error("journal batch failed", rows=len(batch), error=str(error))
                    results = [error] * len(batch)
                for item, result in zip(batch, results, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
        finally:
            self._closing = True
            pending, self._queue = self._queue, []
            for item in pending:
                if not item.future.done():
                    item.future.set_exception(JournalClosedError("the journal writer stopped"))

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.maintenance_s)
            try:
                await self._write(self._expire_epoch, time.monotonic())
                await self.run_retention()
            except (JournalError, sqlite3.Error) as exc:
                self._log.error("journal maintenance failed", error=str(exc))

    def status(self) -> JournalStatus:
        """A snapshot of counters (no I/O)."""
        epoch = self._sealer.current
        return JournalStatus(
            last_seq=self._next_seq - 1,
            synced_seq=self._cursor,
            rows=self._rows,
            unsynced=self._unsynced,
            alarm=self._alarm,
            full=self._full,
            commits=self._commits,
            appended=self._appended,
            epoch_id=epoch.epoch_id.hex() if epoch is not None else None,
            writer_cpu_s=self._writer_cpu_s,
        )

    # ------------------------------------------------------------------ replay

    def replay(self, after_seq: int = 0) -> Iterator[tuple[int, ScanDecided | PassageRecorded]]:
        """(seq, record) of every scan and passage after ``after_seq``, in seq order.

        Blocking, on its own read connection: call it before the lanes start, or from a
        thread.  Records carry no identity and ``decision.alerts`` is empty.
        """
        db = connect(self.config, reader=True)
        try:
            cur = db.execute(
                f"SELECT {SELECT} FROM events e "  # noqa: S608 - fixed column names
                "WHERE e.seq > ? AND e.kind IN ('scan', 'passage') ORDER BY e.seq",
                (after_seq,),
            )
            while chunk := cur.fetchmany(500):
                for values in chunk:
                    row = row_of((*values, None))
                    yield row.seq, record_of(row)
        finally:
            db.close()

    # ------------------------------------------------------------------ writer thread

    def _open_writer(self) -> None:
        cfg = self.config
        cfg.path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(cfg)
        try:
            enable_wal(db, cfg.path)
            db.execute(f"PRAGMA synchronous = {cfg.synchronous}")
            db.execute(f"PRAGMA wal_autocheckpoint = {int(cfg.wal_autocheckpoint)}")
            db.execute("PRAGMA journal_size_limit = 67108864")
            self._page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            db.execute(f"PRAGMA max_page_count = {max(16, cfg.max_bytes // self._page_size)}")
            self._journal_id = create_schema(db, cfg.path, self.gateway_id, self._log)
            seq_high = db.execute(
                "SELECT MAX(x) FROM (SELECT MAX(seq) AS x FROM events UNION ALL "
                "SELECT seq FROM sqlite_sequence WHERE name = 'events' UNION ALL "
                "SELECT acked_seq FROM sync_cursor)"
            ).fetchone()[0]
            self._next_seq = int(seq_high or 0) + 1
            self._cursor = int(db.execute("SELECT acked_seq FROM sync_cursor").fetchone()[0])
            self._rows = int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            self._unsynced = int(
                db.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (self._cursor,)).fetchone()[
                    0
                ]
            )
            self._published = {e for (e,) in db.execute("SELECT epoch_id FROM epochs")}
        except BaseException:
            db.close()
            raise
        self._db = db
        self._measure()

    def _close_writer(self) -> None:
        self._sealer.erase()
        db, self._db = self._db, None
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()

    def _write_batch(self, batch: list[_Item]) -> list[int | Exception]:
        """One transaction for the whole batch (see _write_items); counts the thread's CPU."""
        started = time.thread_time()
        try:
            return self._write_items(batch)
        finally:
            self._writer_cpu_s += time.thread_time() - started

    def _write_items(self, batch: list[_Item]) -> list[int | Exception]:
        """One transaction for the whole batch.  Items beyond max_rows fail alone; SQLite
        reporting SQLITE_FULL (max_bytes or the disk) rolls back the whole transaction, so
        then every item of the batch fails with JournalFullError (none was written)."""
        db = self._db
        if db is None:
            raise JournalClosedError("the journal is closed")
        cfg = self.config
        results: list[int | Exception] = []
        rows_before = self._rows
        new_epochs: set[str] = set()
        pending: list[dict[str, Any]] = []
        now = time.monotonic()
        if self._used_bytes >= cfg.max_bytes:
            return [self._full_error("bytes")] * len(batch)
        full: JournalFullError | None = None
        try:
            db.execute("BEGIN IMMEDIATE")
            for item in batch:
                if full is None and self._rows + len(item.rows) > cfg.max_rows:
                    full = self._full_error("rows")
                if full is not None:
                    results.append(full)
                    continue
                first = self._next_seq
                self._next_seq += len(item.rows)  # consumed even if the batch fails: no reuse
                self._prepare_item(db, item, first, now, new_epochs)
                pending.extend(item.rows)
                self._rows += len(item.rows)
                results.append(first)
            for start in range(0, len(pending), INSERT_CHUNK):
                chunk = pending[start : start + INSERT_CHUNK]
                db.execute(
                    insert_rows_sql(len(chunk)), [*chain.from_iterable(map(values_of, chunk))]
                )
            db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            self._rows = rows_before
            if not isinstance(exc, sqlite3.Error):
                raise
            if exc.sqlite_errorcode & 0xFF == _SQLITE_FULL:
                self._measure()
                err: JournalError = self._full_error("disk")
            else:
                err = JournalWriteError(f"journal write failed: {exc}")
            raise err from exc
        for epoch_id in new_epochs - self._published:
            self._log.info("journal epoch started", epoch_id=epoch_id)
        self._published |= new_epochs
        self._unsynced += self._rows - rows_before
        self._appended += sum(1 for r in results if isinstance(r, int))
        self._commits += 1
        self._full = full is not None
        self._measure()
        self._check_alarm()
        return results

    def _prepare_item(
        self, db: sqlite3.Connection, item: _Item, first: int, now: float, new_epochs: set[str]
    ) -> None:
        """Number an item's rows and seal its identity; a new epoch's row is inserted now
        (in the batch's transaction) and published once the transaction commits."""
        rows = item.rows
        received = rows[0].pop("received_mono", None)
        if received is not None:  # frame arrival -> this transaction (commit follows at once)
            rows[0]["latency_us"] = max(1, round((time.monotonic() - received) * 1e6))
        for i, row in enumerate(rows):
            row["seq"] = first + i
            if i:
                row["scan_seq"] = first
        if item.identity is not None:
            sealed = self._sealer.seal(
                item.identity, gateway_id=self.gateway_id, seq=first, now=now
            )
            epoch = self._sealer.current
            assert epoch is not None
            if epoch is not self._epoch_hex[0]:  # a new epoch: its id as text, once
                self._epoch_hex = (epoch, epoch.epoch_id.hex())
            epoch_id = self._epoch_hex[1]
            if epoch_id not in self._published and epoch_id not in new_epochs:
                db.execute(
                    "INSERT OR IGNORE INTO epochs (epoch_id, ephemeral_public, created_ts) "
                    "VALUES (?, ?, ?)",
                    (epoch_id, epoch.ephemeral_public, time.time()),
                )
                new_epochs.add(epoch_id)
            rows[0]["identity_sealed"] = sealed
            rows[0]["epoch_id"] = epoch_id

    def _expire_epoch(self, now: float) -> None:
        if self._sealer.current is not None and self._sealer.needs_rotation(now):
            self._sealer.erase()
