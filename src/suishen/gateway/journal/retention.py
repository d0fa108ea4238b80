"""Retention, the size bound and the near-full alarm of the journal (see the package docstring).

A mixin of Journal: these methods run on the writer thread (run_retention on the event loop)
and use the writer-thread state that Journal owns.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from suishen.gateway.journal.config import JournalClosedError, JournalConfig, JournalFullError
from suishen.gateway.journal.rows import INSERT, alert_row
from suishen.gateway.records import AlertKind, AlertRaised, AlertRoute

_CLEAR_MARGIN = 0.05

_T = TypeVar("_T")


class Retention:
    """Usage, the alarm and retention over Journal's state."""

    config: JournalConfig
    site_id: str
    _db: sqlite3.Connection | None
    _log: structlog.typing.FilteringBoundLogger
    _next_seq: int
    _cursor: int
    _rows: int
    _unsynced: int
    _used_bytes: int
    _page_size: int
    _alarm: bool
    _full: bool
    _commits: int

    if TYPE_CHECKING:  # Journal's, which run fn on the writer (reader) thread

        async def _write(self, fn: Callable[..., _T], *args: Any) -> _T: ...

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
            await self._write(self._check_alarm)
        return total

    def _measure(self) -> None:
        assert self._db is not None
        # One statement (one GIL release on the writer thread, not two).
        pages, free = self._db.execute(
            "SELECT * FROM pragma_page_count(), pragma_freelist_count()"
        ).fetchone()
        self._used_bytes = (int(pages) - int(free)) * self._page_size

    def _usage(self) -> float:
        cfg = self.config
        return max(self._rows / cfg.max_rows, self._used_bytes / cfg.max_bytes)

    def _full_error(self, why: str) -> JournalFullError:
        self._full = True
        return JournalFullError(
            f"journal full ({why}): {self._rows} rows, {self._unsynced} unsynced, "
            f"{self._used_bytes} bytes",
            max_rows=self.config.max_rows,
        )

    def _check_alarm(self) -> None:
        """Raise (journalling an AlertRaised) or clear the near-full alarm."""
        threshold = self.config.alarm_fraction
        if self._alarm:
            if self._usage() < threshold - _CLEAR_MARGIN:
                self._alarm = False
                self._log.warning("journal alarm cleared", usage=round(self._usage(), 3))
            return
        if self._usage() < threshold:
            return
        self._retention_all(time.time() - self.config.retention_days * 86400)
        if self._usage() < threshold:
            return
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
            row = alert_row(alert, ts=time.time(), site_id=self.site_id, lane_id=None)
            row["seq"] = self._next_seq
            assert self._db is not None
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(INSERT, row)
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
