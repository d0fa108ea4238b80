"""The gateway's durable journal (DESIGN §5): SQLite in WAL mode, one writer, group commit.

A lane calls ``seq = await journal.append(record)`` and gets its seq back only once the row is
committed, so "the record is durable before the gate opens".  Appends from all lanes are queued;
the one writer task takes everything queued (up to ``max_batch``), writes it in one transaction
on a dedicated writer thread, commits, and then resolves every waiter: 32 lanes cost about one
fsync per batch, and a commit in progress never blocks the event loop.

Durability: ``synchronous=FULL`` (the default).  In WAL mode FULL fsyncs the WAL at every
commit, so an acknowledged row survives a power cut; NORMAL fsyncs only at checkpoints, so it
survives a process crash (kill -9) but not a power cut or kernel panic, where the last commits
can be lost - and a lost seq that the uploader already sent would then be reused for another
record and dropped by the hub's idempotent insert.  The measured cost of FULL under group commit
is small (see the report in the issue), so FULL it is; NORMAL is a setting for lab use.

seq: strictly increasing per gateway, never reused.  Assigned by the writer; on open it
continues from the largest of sqlite_sequence (``AUTOINCREMENT`` keeps the high-water mark even
after retention deleted every row), MAX(seq) and the sync cursor.  A batch that fails leaves a
gap; gaps are harmless (the hub acknowledges a high-water mark).  After a crash, seqs that were
written but never committed may be assigned again: they were never acknowledged to a lane nor
visible to the uploader.

Identity: ``ScanDecided.identity_clear`` is encoded at append time and sealed on the writer
thread to the hub's X25519 key (suishen.protocol.sealing, epochs of ``epoch_s``); only the
sealed bytes and the epoch id are stored, and every new epoch's ephemeral public key is written
to ``epochs`` in the same transaction as its first record.  The clear identity is never written.

Size bound and alarm: retention deletes rows that are synced (seq <= cursor), not quarantined
and older than ``retention_days``, in short chunks, every ``maintenance_s``.  When usage
(max of rows/max_rows and used bytes/max_bytes) reaches ``alarm_fraction`` after retention,
the journal raises a loud alarm: an error log, an ``AlertRaised(kind=JOURNAL)`` row (which the
uploader sends like any alert), the ``on_alarm`` callback and ``status().alarm`` for /status.
It clears (logged once) when usage falls 5 points below the threshold.  When completely full,
``append`` raises JournalFullError: nothing is silently dropped, and the lane must keep the
gate shut (fail closed) until the uploader catches up and retention frees room.  A real
disk-full (SQLITE_FULL) is reported the same way.

Journal id: a random 16-hex ``journal_id`` made when the file is created (schema 2; a schema-1
file gets one when it is opened) and sent with every upload: seqs count within one journal, so
a journal that is lost and recreated (restarting at seq 1) is told apart at the hub, where rows
are keyed (site_id, gateway_id, journal_id, seq, ts) and nothing of the new journal is taken
for a duplicate of the old one.

Schema (``schema_version`` 2)::

    meta(key TEXT PRIMARY KEY, value TEXT)            gateway_id, schema_version, journal_id
    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, kind scan|passage|alert|device,
           site_id, lane_id, direction, format, verdict, reason, person_key, nationality,
           minor INTEGER, status, masked_name, masked_number, cti, kid, zone, latency_us,
           scan_seq, outcome, detail TEXT (JSON: alerts and device events),
           identity_sealed BLOB, epoch_id TEXT (16 hex))
    epochs(epoch_id TEXT PRIMARY KEY, ephemeral_public BLOB, created_ts REAL)
    sync_cursor(id = 1, acked_seq INTEGER, updated_ts REAL)   highest seq the hub acknowledged
    quarantine(seq INTEGER PRIMARY KEY, reason TEXT, ts REAL) rows the hub rejected

Exceptions::

    JournalError                 base of every journal error
     +-- JournalFullError        full (rows, bytes or disk): the record was NOT written
     +-- JournalClosedError      append after close() began (or the writer died)
     +-- JournalWriteError       SQLite failed to write/commit; the record was NOT written
     +-- JournalRecordError      the record cannot be journalled (e.g. an identity that is
     |                           not a map of text fields); raised by append, nothing queued
     +-- JournalMismatchError    the file belongs to another gateway or a newer schema
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

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
)
from suishen.protocol.reasons import Reason
from suishen.protocol.sealing import EpochSealer, SealingError, encode_identity
from suishen.sync.ports import JournalClosed, JournalFailure

__all__ = [
    "Journal",
    "JournalClosedError",
    "JournalConfig",
    "JournalError",
    "JournalFullError",
    "JournalMismatchError",
    "JournalRecordError",
    "JournalRow",
    "JournalStatus",
    "JournalWriteError",
]

log = structlog.get_logger("suishen.gateway.journal")

SCHEMA_VERSION = 2  # 2: meta holds a journal_id
_SQLITE_FULL = 13
_CLEAR_MARGIN = 0.05
_T = TypeVar("_T")

# --------------------------------------------------------------------------- exceptions


class JournalError(JournalFailure):
    """Base of every journal error."""


class JournalFullError(JournalError):
    """The journal is full; the record was not written (the lane keeps the gate shut)."""

    def __init__(self, message: str, *, rows: int, max_rows: int, used_bytes: int) -> None:
        super().__init__(message)
        self.rows = rows
        self.max_rows = max_rows
        self.used_bytes = used_bytes


class JournalClosedError(JournalError, JournalClosed):
    """The journal is closed or closing; the record was not written."""


class JournalWriteError(JournalError):
    """SQLite could not write or commit; the record was not written."""


class JournalRecordError(JournalError, ValueError):
    """The record cannot be journalled as given; nothing was queued."""


class JournalMismatchError(JournalError):
    """The journal file belongs to another gateway or has an unknown schema."""


# --------------------------------------------------------------------------- config


def _help(text: str, **limits: float) -> dict[str, Any]:
    return {"help": text, **limits}


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalConfig:
    """The journal's settings (every one has a default)."""

    path: Path = field(
        default=Path("journal.sqlite3"),
        metadata=_help("the SQLite journal file (its -wal and -shm files sit next to it)"),
    )
    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = field(
        default="FULL",
        metadata=_help(
            "SQLite synchronous mode: FULL fsyncs every commit so an acknowledged record "
            "survives a power cut; NORMAL survives only a process crash (lab use)"
        ),
    )
    epoch_s: float = field(
        default=3600.0,
        metadata=_help("seconds an identity-sealing epoch key lives before rotation", ge=1),
    )
    max_rows: int = field(
        default=5_000_000,
        metadata=_help("row limit; at this many rows append raises JournalFullError", ge=100),
    )
    max_bytes: int = field(
        default=2 * 1024**3,
        metadata=_help("size limit of the database file in bytes (WAL excluded)", ge=65536),
    )
    retention_days: float = field(
        default=28.0,
        metadata=_help("synced rows older than this many days are deleted", ge=0),
    )
    alarm_fraction: float = field(
        default=0.8,
        metadata=_help("usage (rows or bytes) at which the journal alarm is raised", ge=0.1, le=1),
    )
    max_batch: int = field(
        default=1024,
        metadata=_help("most appends written in one group-commit transaction", ge=1),
    )
    maintenance_s: float = field(
        default=60.0,
        metadata=_help("seconds between retention runs and epoch-expiry checks", ge=0.01),
    )
    retention_chunk: int = field(
        default=5000,
        metadata=_help("rows deleted per retention transaction (keeps commits short)", ge=1),
    )
    busy_timeout_s: float = field(
        default=5.0,
        metadata=_help("seconds SQLite waits for a lock held by another connection", ge=0),
    )
    wal_autocheckpoint: int = field(
        default=1000,
        metadata=_help("WAL pages after which a commit checkpoints (SQLite default)", ge=0),
    )

    def __post_init__(self) -> None:
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous: must be FULL, NORMAL or EXTRA")
        for name in ("epoch_s", "maintenance_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        for name in ("max_rows", "max_batch", "retention_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if self.max_bytes < 65536:
            raise ValueError("max_bytes: must be at least 65536")
        if self.retention_days < 0 or self.busy_timeout_s < 0 or self.wal_autocheckpoint < 0:
            raise ValueError("retention_days, busy_timeout_s, wal_autocheckpoint: must be >= 0")
        if not 0 < self.alarm_fraction <= 1:
            raise ValueError("alarm_fraction: must be in (0, 1]")


# --------------------------------------------------------------------------- read records

_COLUMNS = (
    "seq",
    "ts",
    "kind",
    "site_id",
    "lane_id",
    "direction",
    "format",
    "verdict",
    "reason",
    "person_key",
    "nationality",
    "minor",
    "status",
    "masked_name",
    "masked_number",
    "cti",
    "kid",
    "zone",
    "latency_us",
    "scan_seq",
    "outcome",
    "detail",
    "identity_sealed",
    "epoch_id",
)
_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
_SELECT = ", ".join(f"e.{c}" for c in _COLUMNS)


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalRow:
    """One journal row as the uploader reads it (no clear identity, ever)."""

    seq: int
    ts: float
    kind: str  # scan | passage | alert | device
    site_id: str
    lane_id: str | None
    direction: str | None
    format: str | None
    verdict: str | None
    reason: str | None
    person_key: str | None
    nationality: str | None
    minor: bool | None
    status: str | None
    masked_name: str | None
    masked_number: str | None
    cti: str | None
    kid: str | None
    zone: str | None
    latency_us: int | None
    scan_seq: int | None
    outcome: str | None
    detail: str | None  # JSON text (alerts: kind, route, detail, level; device events)
    identity_sealed: bytes | None
    epoch_id: str | None  # 16 hex characters
    epoch_public: bytes | None  # the epoch's raw X25519 ephemeral public key (32 bytes)

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (bytes stay bytes)."""
        return asdict(self)


def _row(values: tuple[Any, ...]) -> JournalRow:
    data = dict(zip((*_COLUMNS, "epoch_public"), values, strict=True))
    if data["minor"] is not None:
        data["minor"] = bool(data["minor"])
    return JournalRow(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalStatus:
    """A snapshot for /status and /metrics."""

    last_seq: int  # highest seq assigned (0: none yet)
    synced_seq: int  # sync cursor: highest seq the hub acknowledged
    rows: int
    unsynced: int  # rows above the cursor (quarantined ones included)
    used_bytes: int
    usage: float  # max(rows/max_rows, used_bytes/max_bytes)
    alarm: bool
    full: bool  # the last append was refused for lack of room
    commits: int
    appended: int
    epoch_id: str | None


# --------------------------------------------------------------------------- the journal


@dataclass(slots=True)
class _Item:
    rows: list[dict[str, Any]]  # first: the record; then its alert rows
    identity: bytes | None  # CBOR plaintext to seal into the first row
    future: asyncio.Future[int]


def _blank(**values: Any) -> dict[str, Any]:
    row = dict.fromkeys(_COLUMNS)
    row.update(values)
    return row


def _scan_detail(r: ScanDecided) -> str | None:
    detail: dict[str, object] = dict(r.detail) if r.detail else {}
    if r.decision.stay_id:
        detail["stay_id"] = r.decision.stay_id
    return json.dumps(detail, sort_keys=True) if detail else None


def _alert_row(
    alert: AlertRaised, *, ts: float, site_id: str, lane_id: str | None
) -> dict[str, Any]:
    detail = {
        "kind": alert.kind.value,
        "route": alert.route.value,
        "detail": alert.detail,
        "level": alert.level.value if alert.level is not None else None,
    }
    return _blank(
        ts=ts,
        kind="alert",
        site_id=site_id,
        lane_id=lane_id,
        person_key=alert.person_key,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
    )


class Journal:
    """The journal of one gateway.  Use as ``async with Journal(...) as journal:`` or call
    ``await start()`` and ``await close()``.

    ``on_alarm`` (optional) is called on the event loop with the AlertRaised of a new alarm.
    """

    def __init__(
        self,
        config: JournalConfig,
        *,
        gateway_id: str,
        site_id: str,
        hub_public_key: X25519PublicKey,
        on_alarm: Callable[[AlertRaised], None] | None = None,
    ) -> None:
        if not gateway_id:
            raise ValueError("gateway_id must not be empty")
        self.config = config
        self.gateway_id = gateway_id
        self.site_id = site_id
        self._on_alarm = on_alarm
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
        self._alarm = False
        self._full = False
        self._commits = 0
        self._appended = 0
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
            self._reader_db = await loop.run_in_executor(self._reader_pool, self._connect, True)
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
            rows = [self._scan_row(record)]
            rows += [
                _alert_row(a, ts=record.ts, site_id=record.site_id, lane_id=record.lane_id)
                for a in record.decision.alerts
            ]
            identity = None
            if record.identity_clear is not None:
                try:
                    identity = encode_identity(record.identity_clear)
                except SealingError as exc:
                    raise JournalRecordError(f"identity cannot be sealed: {exc}") from exc
        elif isinstance(record, PassageRecorded):
            rows = [self._passage_row(record)]
            identity = None
        else:
            raise TypeError(f"cannot journal a {type(record).__name__}")
        return await self._enqueue(rows, identity)

    async def append_alert(
        self, alert: AlertRaised, *, ts: float, lane_id: str | None = None
    ) -> int:
        """Journal an alert that no scan raised (device, journal); returns its seq."""
        return await self._enqueue(
            [_alert_row(alert, ts=ts, site_id=self.site_id, lane_id=lane_id)], None
        )

    async def append_clock_alert(self, detail: str) -> int:
        """Journal a clock alert (to staff): the hub refused rows for their time (the
        uploader's call, through sync.ports.UploadJournal); returns its seq."""
        alert = AlertRaised(kind=AlertKind.CLOCK, route=AlertRoute.STAFF, detail=detail[:200])
        return await self.append_alert(alert, ts=time.time())

    async def append_device(
        self, *, ts: float, lane_id: str, device_id: str, state: str, detail: str = ""
    ) -> int:
        """Journal a device state change (kind="device"); returns its seq."""
        text = json.dumps({"device_id": device_id, "state": state, "detail": detail})
        row = _blank(ts=ts, kind="device", site_id=self.site_id, lane_id=lane_id, detail=text)
        return await self._enqueue([row], None)

    async def _enqueue(self, rows: list[dict[str, Any]], identity: bytes | None) -> int:
        if not self._started or self._closing:
            raise JournalClosedError("the journal is not open")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(rows, identity, future))
        self._wakeup.set()
        return await future

    @staticmethod
    def _scan_row(r: ScanDecided) -> dict[str, Any]:
        p = r.person
        return _blank(
            ts=r.ts,
            kind="scan",
            site_id=r.site_id,
            lane_id=r.lane_id,
            direction=r.direction.value,
            format=r.format.value,
            verdict=r.decision.verdict.value,
            reason=r.decision.reason.value if r.decision.reason is not None else None,
            person_key=p.person_key if p else None,
            nationality=p.nationality if p else None,
            minor=None if p is None or p.minor is None else int(p.minor),
            status=p.status if p else None,
            masked_name=p.masked_name if p else None,
            masked_number=p.masked_number if p else None,
            cti=r.cti,
            kid=r.kid,
            zone=r.zone,
            latency_us=r.latency_us,
            received_mono=r.received_mono,  # popped by _prepare_item, which stamps latency_us
            # The hotel stay a check-in joined, so a restart rebuilds the same party; and the
            # lane's own facts (a folded burst of discards).
            detail=_scan_detail(r),
        )

    @staticmethod
    def _passage_row(r: PassageRecorded) -> dict[str, Any]:
        return _blank(
            ts=r.ts,
            kind="passage",
            site_id=r.site_id,
            lane_id=r.lane_id,
            direction=r.direction.value,
            person_key=r.person_key,
            zone=r.zone,
            scan_seq=r.scan_seq,
            outcome=r.outcome.value,
        )

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
                    results, alarm = await self._write(self._write_batch, batch)
                # Any failure fails this batch's waiters, never the writer task.
                except Exception as exc:  # noqa: BLE001
                    error = (
                        exc
                        if isinstance(exc, JournalError)
                        else JournalWriteError(f"journal write failed: {exc}")
                    )
                    self._log.error("journal batch failed", rows=len(batch), error=str(error))
                    results = [error] * len(batch)
                    alarm = None
                for item, result in zip(batch, results, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
                self._notify(alarm)
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

    # ------------------------------------------------------------------ sync API

    async def read_unsynced(self, after_seq: int, limit: int = 1000) -> list[JournalRow]:
        """Rows with seq > after_seq, not quarantined, in seq order, at most ``limit``."""
        return await self._read(self._read_unsynced, after_seq, limit)

    async def mark_synced(self, up_to_seq: int) -> None:
        """Advance the sync cursor to ``up_to_seq`` (the hub's durable high-water mark)."""
        await self._write(self._mark_synced, up_to_seq)

    async def quarantine(self, seq: int, reason: str) -> None:
        """Set a row the hub rejected aside; read_unsynced skips it, retention keeps it."""
        await self._write(self._quarantine, seq, reason)

    async def quarantined(self) -> list[tuple[int, str, float]]:
        """(seq, reason, ts) of every quarantined row."""
        return await self._read(self._fetch, "SELECT seq, reason, ts FROM quarantine ORDER BY seq")

    async def backlog(self) -> tuple[int, float | None]:
        """(count, oldest ts) of rows not yet acknowledged by the hub (quarantined excluded)."""
        return await self._read(self._backlog)

    async def epochs(self) -> dict[str, bytes]:
        """epoch_id (hex) -> raw ephemeral public key, for every epoch in the journal."""
        rows = await self._read(self._fetch, "SELECT epoch_id, ephemeral_public FROM epochs")
        return {epoch_id: bytes(public) for epoch_id, public in rows}

    async def run_retention(self) -> int:
        """Delete synced, unquarantined rows older than retention_days now; returns the count."""
        cutoff = time.time() - self.config.retention_days * 86400
        total, after = 0, 0
        while True:  # one short transaction per chunk: appends interleave on the writer thread
            deleted, go_on = await self._write(self._retention_chunk, cutoff, after)
            total += deleted
            if go_on is None:
                break
            after = go_on
        if total:
            self._notify(await self._write(self._check_alarm))
        return total

    def _notify(self, alarm: AlertRaised | None) -> None:
        if alarm is None or self._on_alarm is None:
            return
        try:
            self._on_alarm(alarm)
        except Exception:  # noqa: BLE001 - a broken callback must not stop the writer
            self._log.exception("journal on_alarm callback failed")

    def status(self) -> JournalStatus:
        """A snapshot of counters (no I/O)."""
        epoch = self._sealer.current
        return JournalStatus(
            last_seq=self._next_seq - 1,
            synced_seq=self._cursor,
            rows=self._rows,
            unsynced=self._unsynced,
            used_bytes=self._used_bytes,
            usage=self._usage(),
            alarm=self._alarm,
            full=self._full,
            commits=self._commits,
            appended=self._appended,
            epoch_id=epoch.epoch_id.hex() if epoch is not None else None,
        )

    @property
    def alarm(self) -> bool:
        """True while the journal is near full (see the module docstring)."""
        return self._alarm

    # ------------------------------------------------------------------ replay

    def replay(self, after_seq: int = 0) -> Iterator[tuple[int, ScanDecided | PassageRecorded]]:
        """(seq, record) of every scan and passage after ``after_seq``, in seq order.

        Blocking, on its own read connection: call it before the lanes start, or from a
        thread.  Records carry no identity and ``decision.alerts`` is empty.
        """
        db = self._connect(True)
        try:
            cur = db.execute(
                f"SELECT {_SELECT} FROM events e "  # noqa: S608 - fixed column names
                "WHERE e.seq > ? AND e.kind IN ('scan', 'passage') ORDER BY e.seq",
                (after_seq,),
            )
            while chunk := cur.fetchmany(500):
                for values in chunk:
                    row = _row((*values, None))
                    yield row.seq, _record(row)
        finally:
            db.close()

    # ------------------------------------------------------------------ writer thread

    def _connect(self, reader: bool = False) -> sqlite3.Connection:
        cfg = self.config
        db = sqlite3.connect(
            cfg.path, timeout=cfg.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        if reader:
            db.execute("PRAGMA query_only = ON")
        return db

    def _open_writer(self) -> None:
        cfg = self.config
        cfg.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            _enable_wal(db, cfg.path)
            db.execute(f"PRAGMA synchronous = {cfg.synchronous}")
            db.execute(f"PRAGMA wal_autocheckpoint = {int(cfg.wal_autocheckpoint)}")
            db.execute("PRAGMA journal_size_limit = 67108864")
            self._page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            db.execute(f"PRAGMA max_page_count = {max(16, cfg.max_bytes // self._page_size)}")
            self._create_schema(db)
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

    def _create_schema(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        for stmt in _SCHEMA:
            db.execute(stmt)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            meta = {
                "gateway_id": self.gateway_id,
                "schema_version": str(SCHEMA_VERSION),
                "journal_id": secrets.token_hex(8),
            }
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        elif meta.get("gateway_id") != self.gateway_id:
            db.execute("ROLLBACK")
            raise JournalMismatchError(
                f"{self.config.path} is the journal of gateway {meta.get('gateway_id')!r}, "
                f"not {self.gateway_id!r}"
            )
        elif meta.get("schema_version") in ("1", "2") and "journal_id" not in meta:
            # schema 1 (before journal ids): give it one, in the same transaction
            meta["journal_id"] = secrets.token_hex(8)
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('journal_id', ?)",
                (meta["journal_id"],),
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("2",))
            self._log.info("journal id made for an older journal", journal_id=meta["journal_id"])
        elif meta.get("schema_version") != str(SCHEMA_VERSION):
            db.execute("ROLLBACK")
            raise JournalMismatchError(f"unknown journal schema {meta.get('schema_version')!r}")
        self._journal_id = meta["journal_id"]
        db.execute(
            "INSERT OR IGNORE INTO sync_cursor (id, acked_seq, updated_ts) VALUES (1, 0, ?)",
            (time.time(),),
        )
        db.execute("COMMIT")

    def _close_writer(self) -> None:
        self._sealer.erase()
        db, self._db = self._db, None
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()

    def _measure(self) -> None:
        assert self._db is not None
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        self._used_bytes = (int(pages) - int(free)) * self._page_size

    def _usage(self) -> float:
        cfg = self.config
        return max(self._rows / cfg.max_rows, self._used_bytes / cfg.max_bytes)

    def _full_error(self, why: str) -> JournalFullError:
        self._full = True
        return JournalFullError(
            f"journal full ({why}): {self._rows} rows, {self._unsynced} unsynced, "
            f"{self._used_bytes} bytes",
            rows=self._rows,
            max_rows=self.config.max_rows,
            used_bytes=self._used_bytes,
        )

    def _write_batch(self, batch: list[_Item]) -> tuple[list[int | Exception], AlertRaised | None]:
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
            return [self._full_error("bytes")] * len(batch), None
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
            db.executemany(_INSERT, pending)
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
        return results, self._check_alarm()

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
            epoch_id = epoch.epoch_id.hex()
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

    def _check_alarm(self) -> AlertRaised | None:
        """Raise or clear the near-full alarm; returns the AlertRaised of a new alarm."""
        threshold = self.config.alarm_fraction
        if self._alarm:
            if self._usage() < threshold - _CLEAR_MARGIN:
                self._alarm = False
                self._log.warning("journal alarm cleared", usage=round(self._usage(), 3))
            return None
        if self._usage() < threshold:
            return None
        self._retention_all(time.time() - self.config.retention_days * 86400)
        if self._usage() < threshold:
            return None
        self._alarm = True
        detail = (
            f"journal {self._usage():.0%} full: {self._rows} rows, {self._unsynced} not yet synced"
        )
        self._log.error(
            "journal near full",
            usage=round(self._usage(), 3),
            rows=self._rows,
            unsynced=self._unsynced,
            used_bytes=self._used_bytes,
        )
        alert = AlertRaised(kind=AlertKind.JOURNAL, route=AlertRoute.STAFF, detail=detail)
        if self._rows < self.config.max_rows:
            row = _alert_row(alert, ts=time.time(), site_id=self.site_id, lane_id=None)
            row["seq"] = self._next_seq
            assert self._db is not None
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(_INSERT, row)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self._log.error("journal alarm row not written", error=str(exc))
            else:
                self._next_seq += 1
                self._rows += 1
                self._unsynced += 1
                self._commits += 1
                self._measure()
        return alert

    def _retention_chunk(self, cutoff: float, after: int) -> tuple[int, int | None]:
        """Delete synced, unquarantined rows older than cutoff among the next retention_chunk
        rows after seq ``after``; returns (deleted, where to go on, or None when done)."""
        db = self._db
        if db is None:
            raise JournalClosedError("the journal is closed")
        candidates = db.execute(
            "SELECT e.seq, e.ts, q.seq IS NOT NULL FROM events e "
            "LEFT JOIN quarantine q ON q.seq = e.seq "
            "WHERE e.seq > ? AND e.seq <= ? ORDER BY e.seq LIMIT ?",
            (after, self._cursor, self.config.retention_chunk),
        ).fetchall()
        doomed: list[tuple[int]] = []
        go_on: int | None = candidates[-1][0] if candidates else None
        if len(candidates) < self.config.retention_chunk:
            go_on = None
        for seq, ts, held in candidates:
            if ts >= cutoff:  # rows are in ts order (but for clock steps): stop at a young one
                go_on = None
                break
            if not held:
                doomed.append((seq,))
        if doomed:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM events WHERE seq = ?", doomed)
                db.execute("COMMIT")
            except sqlite3.Error:
                db.execute("ROLLBACK")
                raise
            self._rows -= len(doomed)
            self._measure()
            self._log.info("journal retention", deleted=len(doomed), up_to=doomed[-1][0])
        return len(doomed), go_on

    def _retention_all(self, cutoff: float) -> int:
        total, after = 0, 0
        while True:
            deleted, go_on = self._retention_chunk(cutoff, after)
            total += deleted
            if go_on is None:
                return total
            after = go_on

    def _mark_synced(self, up_to_seq: int) -> None:
        db = self._db
        if db is None:
            raise JournalClosedError("the journal is closed")
        if up_to_seq <= self._cursor:
            return
        if up_to_seq >= self._next_seq:
            self._log.error(
                "hub acknowledged a seq beyond the journal; seqs skip ahead to avoid reuse",
                acked=up_to_seq,
                last_seq=self._next_seq - 1,
            )
            self._next_seq = up_to_seq + 1
        acked = db.execute(
            "SELECT COUNT(*) FROM events WHERE seq > ? AND seq <= ?", (self._cursor, up_to_seq)
        ).fetchone()[0]
        db.execute(
            "UPDATE sync_cursor SET acked_seq = ?, updated_ts = ? WHERE id = 1",
            (up_to_seq, time.time()),
        )
        self._cursor = up_to_seq
        self._unsynced -= int(acked)

    def _quarantine(self, seq: int, reason: str) -> None:
        db = self._db
        if db is None:
            raise JournalClosedError("the journal is closed")
        if db.execute("SELECT 1 FROM events WHERE seq = ?", (seq,)).fetchone() is None:
            raise JournalError(f"no journal row with seq {seq}")
        db.execute(
            "INSERT OR REPLACE INTO quarantine (seq, reason, ts) VALUES (?, ?, ?)",
            (seq, reason[:500], time.time()),
        )
        self._log.warning("journal row quarantined", seq=seq, reason=reason[:200])

    # ------------------------------------------------------------------ reader thread

    def _fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self._reader_db is not None
        return self._reader_db.execute(sql, params).fetchall()

    def _read_unsynced(self, after_seq: int, limit: int) -> list[JournalRow]:
        rows = self._fetch(
            f"SELECT {_SELECT}, p.ephemeral_public FROM events e "  # noqa: S608
            "LEFT JOIN epochs p ON p.epoch_id = e.epoch_id "
            "WHERE e.seq > ? AND e.seq NOT IN (SELECT seq FROM quarantine) "
            "ORDER BY e.seq LIMIT ?",
            after_seq,
            max(0, limit),
        )
        return [_row(values) for values in rows]

    def _backlog(self) -> tuple[int, float | None]:
        assert self._reader_db is not None
        cursor = self._reader_db.execute("SELECT acked_seq FROM sync_cursor").fetchone()[0]
        count, oldest = self._reader_db.execute(
            "SELECT COUNT(*), MIN(ts) FROM events "
            "WHERE seq > ? AND seq NOT IN (SELECT seq FROM quarantine)",
            (cursor,),
        ).fetchone()
        return int(count), oldest


def _enable_wal(db: sqlite3.Connection, path: Path) -> None:
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"cannot put {path} in WAL mode (got {mode})")


def _text(value: str | None) -> str:
    if value is None:
        raise JournalError("journal row lacks a required column")
    return value


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('scan', 'passage', 'alert', 'device')),
        site_id TEXT NOT NULL,
        lane_id TEXT,
        direction TEXT,
        format TEXT,
        verdict TEXT,
        reason TEXT,
        person_key TEXT,
        nationality TEXT,
        minor INTEGER,
        status TEXT,
        masked_name TEXT,
        masked_number TEXT,
        cti TEXT,
        kid TEXT,
        zone TEXT,
        latency_us INTEGER,
        scan_seq INTEGER,
        outcome TEXT,
        detail TEXT,
        identity_sealed BLOB,
        epoch_id TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS epochs (
        epoch_id TEXT PRIMARY KEY,
        ephemeral_public BLOB NOT NULL,
        created_ts REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sync_cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        acked_seq INTEGER NOT NULL,
        updated_ts REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        seq INTEGER PRIMARY KEY,
        reason TEXT NOT NULL,
        ts REAL NOT NULL
    )""",
)


def _stay_id(detail: str | None) -> str | None:
    if not detail:
        return None
    try:
        value = json.loads(detail).get("stay_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _record(row: JournalRow) -> ScanDecided | PassageRecorded:
    """Rebuild a scan or passage record from its row (no identity, no alerts)."""
    if row.kind == "passage":
        return PassageRecorded(
            ts=row.ts,
            site_id=row.site_id,
            lane_id=row.lane_id or "",
            scan_seq=row.scan_seq or 0,
            outcome=PassageOutcomeKind(_text(row.outcome)),
            person_key=row.person_key,
            direction=Direction(row.direction or Direction.IN),
            zone=row.zone or "main",
        )
    person = None
    if row.person_key is not None:
        person = Person(
            person_key=row.person_key,
            nationality=row.nationality,
            minor=row.minor,
            status=row.status,
            masked_name=row.masked_name or "",
            masked_number=row.masked_number or "",
        )
    return ScanDecided(
        ts=row.ts,
        site_id=row.site_id,
        lane_id=row.lane_id or "",
        direction=Direction(_text(row.direction)),
        format=ScanFormat(_text(row.format)),
        decision=Decision(
            verdict=Verdict(_text(row.verdict)),
            reason=Reason(row.reason) if row.reason is not None else None,
            stay_id=_stay_id(row.detail),
        ),
        person=person,
        cti=row.cti,
        kid=row.kid,
        zone=row.zone or "main",
        latency_us=row.latency_us or 0,
    )
