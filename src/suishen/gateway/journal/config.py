"""The journal's settings and its exception tree (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from suishen.sync.ports import JournalClosed, JournalFailure

# --------------------------------------------------------------------------- exceptions


class JournalError(JournalFailure):
    """Base of every journal error."""


class JournalFullError(JournalError):
    """The journal is full; the record was not written (the lane keeps the gate shut)."""

    def __init__(self, message: str, *, max_rows: int) -> None:
        super().__init__(message)
        self.max_rows = max_rows


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
