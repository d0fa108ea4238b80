"""What the gateway-side sync tasks need from the gateway, as small protocols.

DESIGN §2: the gateway depends on sync (it runs the uploader), never the other way round. The
uploader and the bundle fetcher therefore see the journal, the lists and the hub settings only
through these protocols; gateway.journal's errors subclass the two bases below, so sync can
tell "the journal is closed" from "the journal failed" without importing the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class JournalFailure(Exception):
    """Base of the journal's errors (gateway.journal.JournalError subclasses it)."""


class JournalClosed(JournalFailure):
    """The journal is closed (gateway.journal.JournalClosedError subclasses it)."""


class UploadRow(Protocol):
    """One journal row as the uploader reads it (gateway.journal.JournalRow)."""

    @property
    def seq(self) -> int: ...

    @property
    def kind(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


class CursorStatus(Protocol):
    @property
    def last_seq(self) -> int: ...

    @property
    def synced_seq(self) -> int: ...


class UploadJournal(Protocol):
    """The journal's read side and sync cursor (gateway.journal.Journal)."""

    @property
    def journal_id(self) -> str: ...

    async def read_unsynced(self, after_seq: int, limit: int = 1000) -> Sequence[UploadRow]: ...

    async def mark_synced(self, up_to_seq: int) -> None: ...

    async def quarantine(self, seq: int, reason: str) -> None: ...

    async def append_clock_alert(self, detail: str) -> int: ...

    def status(self) -> CursorStatus: ...


class BundleSink(Protocol):
    """Where fetched bundles go (gateway.lists.Lists): verified, versioned, persisted."""

    def install(self, kind: str, data: bytes) -> int: ...

    def version(self, kind: str) -> int: ...


class SyncSettings(Protocol):
    """The hub settings the sync tasks read (gateway.config.HubSettings); read-only members,
    so a frozen settings dataclass satisfies it whatever numeric types its fields use."""

    @property
    def url(self) -> str: ...
    @property
    def batch_rows(self) -> int: ...
    @property
    def batch_interval_s(self) -> float: ...
    @property
    def poll_s(self) -> float: ...
    @property
    def alerts_fast_lane(self) -> bool: ...
    @property
    def request_timeout_s(self) -> float: ...
    @property
    def backoff_initial_s(self) -> float: ...
    @property
    def backoff_max_s(self) -> float: ...
    @property
    def forbidden_backoff_s(self) -> float: ...
    @property
    def long_poll_s(self) -> float: ...


RowMapping = Mapping[str, Any]
