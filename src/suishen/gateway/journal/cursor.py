"""The journal's sync API (DESIGN §6): unsynced rows for the uploader, the sync cursor (the
hub's durable high-water mark) and the quarantine of rows the hub rejected.

A mixin of Journal: writes run on the writer thread, reads on the reader thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from suishen.gateway.journal.config import JournalClosedError, JournalError
from suishen.gateway.journal.rows import SELECT, JournalRow, row_of

_T = TypeVar("_T")


class SyncCursor:
    """read_unsynced / mark_synced / quarantine over Journal's connections and state."""

    _db: sqlite3.Connection | None
    _reader_db: sqlite3.Connection | None
    _log: structlog.typing.FilteringBoundLogger
    _next_seq: int
    _cursor: int
    _unsynced: int
    if TYPE_CHECKING:  # Journal's, which run fn on the writer (reader) thread

        async def _write(self, fn: Callable[..., _T], *args: Any) -> _T: ...

        async def _read(self, fn: Callable[..., _T], *args: Any) -> _T: ...

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

    # ------------------------------------------------------------------ threads

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
            f"SELECT {SELECT}, p.ephemeral_public FROM events e "  # noqa: S608
            "LEFT JOIN epochs p ON p.epoch_id = e.epoch_id "
            "WHERE e.seq > ? AND e.seq NOT IN (SELECT seq FROM quarantine) "
            "ORDER BY e.seq LIMIT ?",
            after_seq,
            max(0, limit),
        )
        return [row_of(values) for values in rows]

    def _backlog(self) -> tuple[int, float | None]:
        assert self._reader_db is not None
        cursor = self._reader_db.execute("SELECT acked_seq FROM sync_cursor").fetchone()[0]
        count, oldest = self._reader_db.execute(
            "SELECT COUNT(*), MIN(ts) FROM events "
            "WHERE seq > ? AND seq NOT IN (SELECT seq FROM quarantine)",
            (cursor,),
        ).fetchone()
        return int(count), oldest
