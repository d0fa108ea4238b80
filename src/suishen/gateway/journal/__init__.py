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
uploader sends like any alert) and ``status().alarm`` for /status.
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

Modules: config (settings, exceptions), schema (tables, opening), rows (columns, record <-> row),
store (the Journal: writer task, group commit, sealing, replay), cursor (the sync API: unsynced
rows, the cursor, quarantine), retention (retention, size bound, the near-full alarm).
"""

from __future__ import annotations

from suishen.gateway.journal.config import (
    JournalClosedError,
    JournalConfig,
    JournalError,
    JournalFullError,
    JournalMismatchError,
    JournalRecordError,
    JournalWriteError,
)
from suishen.gateway.journal.rows import JournalRow
from suishen.gateway.journal.store import Journal, JournalStatus

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
