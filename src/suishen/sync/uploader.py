"""The gateway's uploader: journal rows up to the hub, exactly once in effect (DESIGN §6).

Bulk lane (one task)::

    journal cursor -> read_unsynced -> batch (<= batch_rows, or whatever is there once the
    oldest row waited batch_interval_s) -> POST {hub}/v1/ingest -> quarantine the rows the hub
    rejected -> mark_synced(min(high_water, highest seq sent))

The cursor never passes what was sent: the hub's high-water mark is clamped to the batch (the
fast lane below may have put a later seq at the hub already).  Every answer is handled by its
status:

    200        settle: quarantine ``rejected``, advance the cursor; rows rejected for their
               time (reason ``clock``: outside the hub's window) are logged as an error and
               raise a clock alert in the journal (at most one per CLOCK_ALERT_INTERVAL_S)
    other 4xx  the batch as a whole was refused (400 malformed, 413 too large, 422, ...): the
               client's fault, so never resent as it is.  Split it (at the row the hub named,
               else in halves) and send the parts; a single row still refused is quarantined
               with the hub's error, so one bad row cannot block the gateway.  The split is
               bounded: after MAX_SPLIT_REQUESTS refused requests for one batch, the parts
               left are quarantined whole (a hub refusing everything costs a few dozen
               requests, not two per row)
    401, 403   the hub refuses this gateway (certificate binding, not registered yet):
               logged loudly at once and every REFUSAL_REMIND_S, retried every
               forbidden_backoff_s (seconds, so that `hub gateway add` takes effect at once;
               the next attempt's time is in /status); nothing is dropped
    408, 425, 429, 5xx, connection errors, timeouts
               retried with exponential backoff and full jitter (Retry-After honoured up to the
               cap); "hub unreachable" is logged once when it starts, "hub back" once when an
               upload goes through again
    404, 405, 1xx/3xx
               a misconfiguration (wrong URL path, ...): logged, retried with backoff (a wrong
               URL must not quarantine the journal)

Alert fast lane (a second task): alert rows must not wait behind a backlog (after an outage the
bulk lane may be minutes behind).  The fast lane tails the journal itself - every poll_s it
reads the rows journalled since it last looked and POSTs the alert rows among them to
/v1/alerts at once.  Tailing the journal instead of taking a queue from the lanes means an
alert is only ever sent once it is durable, every kind of alert (scan-raised, device, journal
alarm) is covered by one path, and neither the lanes nor the journal need a hook.  The hub
deduplicates on (site_id, gateway_id, journal_id, seq) against the bulk upload of the same
rows, so the fast lane is best effort: an alert it could not send (hub down, refused) still
goes with the bulk lane, and alerts the bulk lane has already delivered are dropped from its
queue.  Every batch on either lane carries the journal's ``journal_id``: seqs count within one
journal file, so a recreated journal's rows are new rows at the hub, not duplicates.

Stop with ``stop()``; ``flush(deadline_s)`` then makes a last best-effort upload (the journal
keeps everything that did not make it).  Counters are in ``stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import structlog

from suishen.protocol.backoff import Backoff
from suishen.sync.ports import JournalClosed, JournalFailure, SyncSettings, UploadJournal, UploadRow
from suishen.sync.wire import BACKLOG_HEADER, encode_batch
from suishen.sync.workers import run_until_stopped

__all__ = ["HubUnreachableError", "UploadStats", "Uploader"]

log = structlog.get_logger("suishen.sync.uploader")

INGEST_PATH: Final = "/v1/ingest"
ALERTS_PATH: Final = "/v1/alerts"
MAX_FAST_LANE_QUEUE: Final = 10_000  # alerts beyond this wait for the bulk lane
_RETRY_STATUSES: Final = frozenset({408, 425, 429})
_FORBIDDEN_STATUSES: Final = frozenset({401, 403})
_MISCONFIGURED_STATUSES: Final = frozenset({404, 405})
REFUSAL_REMIND_S: Final = 300.0  # while refused (403), the error is logged again this often
MAX_SPLIT_REQUESTS: Final = 32  # refused requests per batch before the rest is quarantined
CLOCK_ALERT_INTERVAL_S: Final = 3600.0  # at most one clock alert per hour


def _refused(status: int) -> bool:
    """A 4xx that refuses the batch itself (not the gateway, not the URL, not "later")."""
    return (
        400 <= status < 500
        and status not in _RETRY_STATUSES
        and status not in _FORBIDDEN_STATUSES
        and status not in _MISCONFIGURED_STATUSES
    )


class HubUnreachableError(Exception):
    """The request did not get an answer (connection refused or reset, TLS, timeout)."""


@dataclass(slots=True)
class UploadStats:
    """What /status and /metrics report about the upload (updated in place)."""

    rows_uploaded: int = 0  # rows the hub acknowledged (stored or duplicate)
    rows_rejected: int = 0  # rows quarantined because the hub refused them
    batches: int = 0  # successful POST /v1/ingest
    failures: int = 0  # failed upload attempts, all causes
    consecutive_failures: int = 0
    alerts_sent: int = 0  # alert rows the fast lane delivered
    clock_refused: int = 0  # rows the hub refused for their time (quarantined)
    last_success_at: float | None = None  # wall clock of the last successful upload
    hub_up: bool | None = None  # None until the first attempt
    forbidden: bool = False  # the hub answered 403 to the last attempt
    last_error: str | None = None
    next_attempt_at: float | None = None  # wall clock of the retry after a failure, else None

    def as_dict(self) -> dict[str, Any]:
        next_at = self.next_attempt_at
        return {
            "hub_up": self.hub_up,
            "forbidden": self.forbidden,
            "rows_uploaded": self.rows_uploaded,
            "rows_rejected": self.rows_rejected,
            "batches": self.batches,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "alerts_sent": self.alerts_sent,
            "clock_refused": self.clock_refused,
            "last_success_at": self.last_success_at,
            "last_success_at_iso": _iso(self.last_success_at),
            "last_error": self.last_error,
            "next_attempt_at": _iso(next_at),
            "next_attempt_in_s": None if next_at is None else round(next_at - time.time(), 3),
        }


def _iso(wall: float | None) -> str | None:
    """A wall-clock time as ISO 8601 in UTC (None stays None)."""
    if wall is None:
        return None
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    document: Any  # decoded JSON, or None
    retry_after_s: float | None

    @property
    def error(self) -> str:
        doc = self.document
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return str(doc["error"])[:300]
        return f"HTTP {self.status}"


class Uploader:
    """One per gateway: the bulk lane and the alert fast lane.  ``await run()`` until stop()."""

    def __init__(
        self,
        journal: UploadJournal,
        session: aiohttp.ClientSession,
        settings: SyncSettings,
        *,
        gateway_id: str,
        backoff: Backoff | None = None,
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.gateway_id = gateway_id
        self.stats = UploadStats()
        self._session = session
        self._base = settings.url.rstrip("/")
        self._backoff = backoff or Backoff(
            initial_s=settings.backoff_initial_s, cap_s=settings.backoff_max_s
        )
        self._stop = asyncio.Event()
        self._down_since: float | None = None
        self._log = log.bind(gateway_id=gateway_id)
        self._complaint: str | None = None  # last "other status" logged, to log it once
        self._next_delay = 0.0  # how long the bulk lane waits after a failed upload
        self._refused_logged_at: float | None = None  # monotonic time of the last 403 log
        self._clock_alert_at: float | None = None  # monotonic time of the last clock alert

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run the bulk lane and (if enabled) the alert fast lane until stop()."""
        loops = {"uploader-bulk": self._bulk_loop()}
        if self.settings.alerts_fast_lane:
            loops["uploader-alerts"] = self._alert_loop()
        await run_until_stopped(self._stop, loops)

    async def flush(self, deadline_s: float) -> int:
        """Best effort: upload what is unsynced within ``deadline_s``; returns the rows left.
        Never raises for the hub being away or the deadline (the journal keeps the rest)."""
        with contextlib.suppress(TimeoutError, JournalFailure):
            async with asyncio.timeout(deadline_s):
                while True:
                    cursor = self.journal.status().synced_seq
                    rows = await self.journal.read_unsynced(cursor, self.settings.batch_rows)
                    if not rows or not await self._upload(rows):
                        break
        left = self.journal.status()
        return max(0, left.last_seq - left.synced_seq)

    async def _pause(self, seconds: float) -> None:
        """Sleep, returning early on stop()."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    # ------------------------------------------------------------------ bulk lane

    async def _bulk_loop(self) -> None:
        settings = self.settings
        pending_since: float | None = None
        while not self._stop.is_set():
            status = self.journal.status()
            cursor, last = status.synced_seq, status.last_seq
            if last <= cursor:
                pending_since = None
                await self._pause(settings.poll_s)
                continue
            now = time.monotonic()
            if pending_since is None:
                pending_since = now
            waited = now - pending_since
            if last - cursor < settings.batch_rows and waited < settings.batch_interval_s:
                await self._pause(min(settings.poll_s, settings.batch_interval_s - waited))
                continue
            try:
                rows = await self.journal.read_unsynced(cursor, settings.batch_rows)
            except JournalClosed:
                return
            if not rows:  # the rows above the cursor are quarantined (or not yet committed)
                pending_since = now
                await self._pause(settings.poll_s)
                continue
            try:
                delivered = await self._upload(rows)
            except JournalClosed:
                return
            if delivered:
                # A full batch means more is probably waiting: send it without delay.
                pending_since = pending_since if len(rows) >= settings.batch_rows else None
            else:
                await self._pause(self._next_delay)

    async def _upload(self, rows: Sequence[UploadRow]) -> bool:
        """Send rows (split when the hub refuses the batch as a whole); True when every row
        was settled (acknowledged or quarantined), False when the caller must back off."""
        return await self._send(rows, [MAX_SPLIT_REQUESTS])

    async def _send(self, rows: Sequence[UploadRow], budget: list[int]) -> bool:
        try:
            answer = await self._post(INGEST_PATH, rows)
        except HubUnreachableError as exc:
            self._failed(str(exc))
            return False
        if answer.status == 200:
            if not await self._settle(rows, answer):
                self._failed(
                    f"hub answered 200 without a valid high_water: {answer.document!r}"[:300]
                )
                return False
            self._succeeded()
            return True
        if _refused(answer.status):
            self._succeeded()  # the hub is up and answering; the batch is the problem
            budget[0] -= 1
            return await self._split(rows, answer, budget)
        if answer.status in _FORBIDDEN_STATUSES:
            self._forbidden(answer)
            return False
        retry_after = answer.retry_after_s if answer.status in (429, 503) else None
        if answer.status >= 500 or answer.status in _RETRY_STATUSES:
            self._failed(f"HTTP {answer.status}: {answer.error}", retry_after_s=retry_after)
            return False
        self._misconfigured(answer)
        return False

    async def _split(self, rows: Sequence[UploadRow], answer: _Answer, budget: list[int]) -> bool:
        if len(rows) == 1 or budget[0] <= 0:
            await self._quarantine_refused(rows, answer)
            return True
        hint = answer.document.get("row") if isinstance(answer.document, dict) else None
        if type(hint) is int and 0 <= hint < len(rows):
            parts = [rows[:hint], rows[hint : hint + 1], rows[hint + 1 :]]
        else:
            middle = len(rows) // 2
            parts = [rows[:middle], rows[middle:]]
        for part in parts:
            if not part:
                continue
            if budget[0] <= 0:  # the split budget is spent: no more requests for this batch
                await self._quarantine_refused(part, answer)
            elif not await self._send(part, budget):
                return False
        return True

    async def _quarantine_refused(self, rows: Sequence[UploadRow], answer: _Answer) -> None:
        reason = f"hub refused ({answer.status}): {answer.error}"[:500]
        for row in rows:
            await self.journal.quarantine(row.seq, reason)
        self.stats.rows_rejected += len(rows)
        self._log.warning(
            "row refused by the hub; quarantined"
            if len(rows) == 1
            else "rows refused by the hub past the split budget; quarantined",
            seq=rows[0].seq,
            last_seq=rows[-1].seq,
            status=answer.status,
        )

    async def _settle(self, rows: Sequence[UploadRow], answer: _Answer) -> bool:
        """Quarantine the rejected rows and advance the cursor; False for a bad answer."""
        doc = answer.document
        high_water = doc.get("high_water") if isinstance(doc, dict) else None
        rejected = doc.get("rejected", []) if isinstance(doc, dict) else None
        if type(high_water) is not int or not isinstance(rejected, list):
            return False
        sent = {row.seq for row in rows}
        refused, clock = 0, []
        for item in rejected:
            seq = item.get("seq") if isinstance(item, dict) else None
            if type(seq) is int and seq in sent:
                reason = item.get("reason")
                await self.journal.quarantine(seq, f"hub rejected: {reason}"[:500])
                refused += 1
                if isinstance(reason, str) and reason.startswith("clock"):
                    clock.append((seq, reason))
        if clock:
            await self._clock_refused(clock)
        acked = min(high_water, rows[-1].seq)  # never beyond what was sent
        if acked < rows[-1].seq:
            self._log.warning(
                "hub acknowledged less than was sent; the rest is sent again",
                high_water=high_water,
                sent_up_to=rows[-1].seq,
            )
        await self.journal.mark_synced(acked)
        self.stats.rows_rejected += refused
        self.stats.rows_uploaded += sum(1 for row in rows if row.seq <= acked) - refused
        self.stats.batches += 1
        return True

    async def _clock_refused(self, refused: list[tuple[int, str]]) -> None:
        """The hub refused rows for their time: log it, and journal a clock alert (to staff)
        at most once per CLOCK_ALERT_INTERVAL_S (a backlog of such rows makes one alert)."""
        self.stats.clock_refused += len(refused)
        self._log.error(
            "hub refused rows for their time: check this gateway's clock; rows quarantined",
            rows=len(refused),
            first_seq=refused[0][0],
            reason=refused[0][1][:200],
        )
        now = time.monotonic()
        if self._clock_alert_at is not None and now - self._clock_alert_at < CLOCK_ALERT_INTERVAL_S:
            return
        self._clock_alert_at = now
        detail = f"hub refused {len(refused)} rows for their time: {refused[0][1]}"
        await self.journal.append_clock_alert(detail[:200])

    # ------------------------------------------------------------------ alert fast lane

    async def _alert_loop(self) -> None:
        settings = self.settings
        after = self.journal.status().last_seq  # older alerts go with the bulk upload
        queue: dict[int, UploadRow] = {}
        backoff = Backoff(initial_s=settings.backoff_initial_s, cap_s=settings.backoff_max_s)
        retry_at = 0.0
        while not self._stop.is_set():
            status = self.journal.status()
            try:
                while status.last_seq > after:
                    rows = await self.journal.read_unsynced(after, settings.batch_rows)
                    if not rows:
                        break
                    after = rows[-1].seq
                    queue.update((row.seq, row) for row in rows if row.kind == "alert")
            except JournalClosed:
                return
            for seq in [s for s in queue if s <= self.journal.status().synced_seq]:
                del queue[seq]  # the bulk lane delivered it
            while len(queue) > MAX_FAST_LANE_QUEUE:
                del queue[min(queue)]
            if queue and time.monotonic() >= retry_at:
                batch = [queue[seq] for seq in sorted(queue)[: settings.batch_rows]]
                if await self._send_alerts(batch):
                    for row in batch:
                        queue.pop(row.seq, None)
                    backoff.reset()
                else:
                    retry_at = time.monotonic() + backoff.next_delay()
            await self._pause(settings.poll_s)

    async def _send_alerts(self, rows: list[UploadRow]) -> bool:
        """POST alert rows to the fast lane; True when done with them (sent, or refused and
        left to the bulk lane), False to retry later."""
        try:
            answer = await self._post(ALERTS_PATH, rows)
        except HubUnreachableError:
            return False  # the bulk lane logs the hub state
        if 200 <= answer.status < 300:
            self.stats.alerts_sent += len(rows)
            self._log.info("alerts sent on the fast lane", rows=len(rows), first_seq=rows[0].seq)
            return True
        if 400 <= answer.status < 500 and answer.status not in _RETRY_STATUSES:
            self._log.warning(
                "fast lane refused; the alerts go with the bulk upload",
                status=answer.status,
                error=answer.error,
            )
            return True
        return False

    # ------------------------------------------------------------------ HTTP

    async def _post(self, path: str, rows: Sequence[UploadRow]) -> _Answer:
        body = json.dumps(
            encode_batch(
                self.gateway_id,
                (row.as_dict() for row in rows),
                journal_id=self.journal.journal_id,
            ),
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
        status_now = self.journal.status()
        headers = {
            "Content-Type": "application/json",
            # What is still to upload, this batch included: the hub shows it (`hub status`).
            BACKLOG_HEADER: str(max(0, status_now.last_seq - status_now.synced_seq)),
        }
        try:
            async with self._session.post(
                self._base + path,
                data=body,
                headers=headers,
                timeout=timeout,
            ) as response:
                raw = await response.read()
                retry_after = _retry_after(response.headers.get("Retry-After"))
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise HubUnreachableError(_describe(exc)) from exc
        try:
            document = json.loads(raw) if raw else None
        except ValueError:
            document = None
        return _Answer(status, document, retry_after)

    # ------------------------------------------------------------------ hub state

    def _succeeded(self) -> None:
        stats = self.stats
        if stats.hub_up is False:
            self._log.info(
                "hub back",
                down_s=round(time.monotonic() - (self._down_since or time.monotonic()), 3),
                failures=stats.consecutive_failures,
            )
        if stats.forbidden:
            self._log.info("hub accepts this gateway again")
        self._refused_logged_at = None
        stats.next_attempt_at = None
        stats.hub_up, stats.forbidden = True, False
        stats.consecutive_failures = 0
        stats.last_success_at = time.time()
        self._down_since = None
        self._complaint = None
        self._backoff.reset()

    def _failed(self, error: str, *, retry_after_s: float | None = None) -> None:
        stats = self.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = error
        if stats.hub_up is not False:
            self._down_since = time.monotonic()
            status = self.journal.status()
            self._log.warning(
                "hub unreachable",
                error=error,
                backlog=max(0, status.last_seq - status.synced_seq),
            )
        stats.hub_up = False
        delay = self._backoff.next_delay()
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.settings.backoff_max_s))
        self._retry_in(delay)

    def _retry_in(self, delay_s: float) -> None:
        """The bulk lane's wait before its next attempt, shown in the stats as a time."""
        self._next_delay = delay_s
        self.stats.next_attempt_at = time.time() + delay_s

    def _forbidden(self, answer: _Answer) -> None:
        stats = self.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = f"HTTP 403: {answer.error}"
        stats.forbidden = True
        stats.hub_up = True  # reachable, but refusing us
        now = time.monotonic()
        if self._refused_logged_at is None or now - self._refused_logged_at >= REFUSAL_REMIND_S:
            self._refused_logged_at = now
            status = self.journal.status()
            self._log.error(
                "HUB REFUSES THIS GATEWAY (403): check its certificate and gateway id "
                "(`suishen hub gateway add` registers it); the journal keeps every row",
                error=answer.error,
                backlog=max(0, status.last_seq - status.synced_seq),
                retry_every_s=self.settings.forbidden_backoff_s,
                attempts=stats.consecutive_failures,
            )
        self._retry_in(self.settings.forbidden_backoff_s)

    def _misconfigured(self, answer: _Answer) -> None:
        stats = self.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = f"HTTP {answer.status}: {answer.error}"
        stats.hub_up = True
        if self._complaint != stats.last_error:
            self._complaint = stats.last_error
            self._log.error(
                "hub answered an unexpected status", status=answer.status, error=answer.error
            )
        self._retry_in(self._backoff.next_delay())


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta-seconds form only)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
