"""The journal file's tables and how it is opened: WAL, the schema, the meta rows."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

import structlog

from suishen.gateway.journal.config import JournalConfig, JournalError, JournalMismatchError
from suishen.gateway.journal.rows import EVENTS_DDL

SCHEMA_VERSION = 2  # 2: meta holds a journal_id

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    EVENTS_DDL,  # the columns: rows.py, from the wire format
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


def enable_wal(db: sqlite3.Connection, path: Path) -> None:
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"cannot put {path} in WAL mode (got {mode})")


def connect(config: JournalConfig, reader: bool = False) -> sqlite3.Connection:
    """A connection to the journal file (autocommit; read-only when ``reader``)."""
    db = sqlite3.connect(
        config.path, timeout=config.busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    if reader:
        db.execute("PRAGMA query_only = ON")
    return db


def create_schema(
    db: sqlite3.Connection, path: Path, gateway_id: str, log: structlog.typing.FilteringBoundLogger
) -> str:
    """Create the tables if missing and check or write the meta rows, in one transaction;
    returns the journal_id (made now for a new file or a schema-1 file)."""
    db.execute("BEGIN IMMEDIATE")
    for stmt in SCHEMA:
        db.execute(stmt)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if not meta:
        meta = {
            "gateway_id": gateway_id,
            "schema_version": str(SCHEMA_VERSION),
            "journal_id": secrets.token_hex(8),
        }
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
    elif meta.get("gateway_id") != gateway_id:
        db.execute("ROLLBACK")
        raise JournalMismatchError(
            f"{path} is the journal of gateway {meta.get('gateway_id')!r}, not {gateway_id!r}"
        )
    elif meta.get("schema_version") in ("1", "2") and "journal_id" not in meta:
        # schema 1 (before journal ids): give it one, in the same transaction
        meta["journal_id"] = secrets.token_hex(8)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('journal_id', ?)",
            (meta["journal_id"],),
        )
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("2",))
        log.info("journal id made for an older journal", journal_id=meta["journal_id"])
    elif meta.get("schema_version") != str(SCHEMA_VERSION):
        db.execute("ROLLBACK")
        raise JournalMismatchError(f"unknown journal schema {meta.get('schema_version')!r}")
    db.execute(
        "INSERT OR IGNORE INTO sync_cursor (id, acked_seq, updated_ts) VALUES (1, 0, ?)",
        (time.time(),),
    )
    db.execute("COMMIT")
    return str(meta["journal_id"])
