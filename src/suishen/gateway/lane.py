"""A lane: one scanner (+ optional indicator) and one gate, run as one task (DESIGN §5).

Per scan: frame (driver) -> classify, verify, decide (ScanPipeline, synchronous) -> state
updated -> journal commit (durable, group commit) -> actuate (open or stay shut, indicator)
-> passage outcome from the gate's sensor, journalled as its own event.

- The record is durable before the gate opens. If the journal cannot take it (full, failing,
  closed), the lane fails closed: the gate stays shut and the indicator shows a denial.
- State is updated before the commit is awaited, so two lanes cannot both take the last place
  under a capacity limit; if the commit then fails the gateway is failing closed anyway, and
  state rebuilt at restart follows the journal.
- A device that fails (gate down, indicator dead) never stops the lane: the error is logged,
  counted, and the next scan is taken. Only the lane's own device is touched.
- One canonical log line per scan: verdict, reason, format, latency, seq (never a name or a
  document number).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from suishen.drivers.base import DriverError, PassageOutcome, RawScan, Signal
from suishen.gateway.devices import LaneDevices
from suishen.gateway.journal import Journal, JournalError
from suishen.gateway.metrics import Counter, Histogram
from suishen.gateway.pipeline import ScanPipeline
from suishen.gateway.records import (
    Decision,
    PassageOutcomeKind,
    PassageRecorded,
    ScanDecided,
    ScanFormat,
    Verdict,
)
from suishen.gateway.state import SiteState
from suishen.protocol.framing import Discarded, DiscardReason
from suishen.protocol.reasons import Reason

log = structlog.get_logger("suishen.gateway.lane")

INDICATOR_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneSetup:
    lane_id: str
    has_passage_sensor: bool
    passage_timeout_s: float
    open_pulse_ms: int


@dataclass(slots=True)
class LaneMetrics:
    scans: Counter  # labels: lane, verdict, reason
    latency: Histogram  # seconds, frame complete -> decision journalled
    device_errors: Counter  # labels: lane, device, error
    journal_failures: Counter  # labels: lane


@dataclass(slots=True)
class LaneCounters:
    scans: int = 0
    allowed: int = 0
    denied: int = 0
    failed_closed: int = 0
    last_scan_at: float | None = None


class Lane:
    def __init__(
        self,
        *,
        setup: LaneSetup,
        devices: LaneDevices,
        pipeline: ScanPipeline,
        state: SiteState,
        journal: Journal,
        metrics: LaneMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.setup = setup
        self.devices = devices
        self.pipeline = pipeline
        self.state = state
        self.journal = journal
        self.metrics = metrics
        self.counters = LaneCounters()
        self._clock = clock
        self._stopping = False
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._indicator_tasks: set[asyncio.Task[None]] = set()
        self._log = log.bind(lane_id=setup.lane_id)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Take scans until stop(); one scan at a time (a turnstile serves one person)."""
        self._task = asyncio.current_task()
        structlog.contextvars.bind_contextvars(lane_id=self.setup.lane_id)
        async for raw in self.devices.scanner.scans():
            self._busy = True
            try:
                await self.handle(raw)
            finally:
                self._busy = False
            if self._stopping:
                break

    def stop(self) -> None:
        """Stop taking scans; a scan in flight is finished first."""
        self._stopping = True
        if self._task is not None and not self._busy:
            self._task.cancel()

    async def drain_indicators(self) -> None:
        for task in list(self._indicator_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ discarded input

    def discarded(self, discarded: Discarded) -> None:
        """The scanner's framer threw input away: journal it as a denied, unreadable scan."""
        reason = (
            Reason.OVERSIZE
            if discarded.reason is DiscardReason.OVERLONG
            else Reason.MALFORMED_PREFIX
        )
        record = ScanDecided(
            ts=self._clock(),
            site_id=self.pipeline.lane.site_id,
            lane_id=self.setup.lane_id,
            direction=self.pipeline.lane.direction,
            format=ScanFormat.UNKNOWN,
            decision=Decision(verdict=Verdict.DENY, reason=reason),
            person=None,
            zone=self.pipeline.lane.zone,
        )
        task = asyncio.create_task(self._journal_discard(record, discarded))
        self._indicator_tasks.add(task)
        task.add_done_callback(self._indicator_tasks.discard)

    async def _journal_discard(self, record: ScanDecided, discarded: Discarded) -> None:
        try:
            seq = await self.journal.append(record)
        except JournalError as exc:
            self.metrics.journal_failures.inc(self.setup.lane_id)
            self._log.error("discarded input not journalled", error=str(exc))
            return
        self._count(record, 0.0)
        self._show(Signal.deny())
        self._log.info(
            "scan",
            seq=seq,
            verdict="deny",
            reason=record.decision.reason.value if record.decision.reason else None,
            format=ScanFormat.UNKNOWN.value,
            discarded=discarded.reason.value,
            bytes=discarded.byte_count,
        )

    # ------------------------------------------------------------------ one scan

    async def handle(self, raw: RawScan) -> ScanDecided:
        now = self._clock()
        record = self.pipeline.decide(raw, now)
        sensor = self.setup.has_passage_sensor and self.devices.gate is not None
        self.state.apply(record, sensor=sensor)
        try:
            seq = await self.journal.append(record)
        except JournalError as exc:
            return await self._fail_closed(record, raw, exc)
        latency_s = time.monotonic() - raw.received_mono
        allowed = record.decision.verdict is Verdict.ALLOW
        if allowed:
            await self._open()
        self._show(Signal.allow() if allowed else Signal.deny())
        self._count(record, latency_s)
        self._log.info(
            "scan",
            seq=seq,
            verdict=record.decision.verdict.value,
            reason=record.decision.reason.value if record.decision.reason else None,
            format=record.format.value,
            latency_us=round(latency_s * 1e6),
            alerts=len(record.decision.alerts),
        )
        if allowed and self.devices.gate is not None:
            await self._passage(record, seq)
        return record

    async def _open(self) -> None:
        gate = self.devices.gate
        if gate is None:
            return
        try:
            await gate.open(pulse_ms=self.setup.open_pulse_ms)
        except DriverError as exc:
            self._device_error(gate.device_id, exc)

    async def _passage(self, record: ScanDecided, seq: int) -> None:
        gate = self.devices.gate
        assert gate is not None
        outcome = PassageOutcomeKind.NOT_PASSED
        if self.setup.has_passage_sensor:
            try:
                report = await gate.wait_passage(timeout_s=self.setup.passage_timeout_s)
                if report.outcome is PassageOutcome.PASSED:
                    outcome = PassageOutcomeKind.PASSED
            except DriverError as exc:
                self._device_error(gate.device_id, exc)
        else:
            return  # no sensor: the allowed scan itself moved the person (SiteState.apply)
        passage = PassageRecorded(
            ts=self._clock(),
            site_id=record.site_id,
            lane_id=record.lane_id,
            scan_seq=seq,
            outcome=outcome,
            person_key=record.person.person_key if record.person else None,
            direction=record.direction,
            zone=record.zone,
        )
        self.state.apply(passage, sensor=True)
        try:
            await self.journal.append(passage)
        except JournalError as exc:
            self.metrics.journal_failures.inc(self.setup.lane_id)
            self._log.error("passage not journalled", error=str(exc), scan_seq=seq)

    async def _fail_closed(
        self, record: ScanDecided, raw: RawScan, exc: JournalError
    ) -> ScanDecided:
        """The journal did not take the record: keep the gate shut, show a denial."""
        self.counters.failed_closed += 1
        self.metrics.journal_failures.inc(self.setup.lane_id)
        self._log.error(
            "journal refused the scan; gate kept shut",
            error_type=type(exc).__name__,
            error=str(exc),
            latency_us=round((time.monotonic() - raw.received_mono) * 1e6),
        )
        gate = self.devices.gate
        if gate is not None:
            try:
                await gate.keep_shut()
            except DriverError as gate_exc:
                self._device_error(gate.device_id, gate_exc)
        self._show(Signal.deny())
        return record

    def _show(self, signal: Signal) -> None:
        indicator = self.devices.indicator
        if indicator is None:
            return

        async def show() -> None:
            try:
                async with asyncio.timeout(INDICATOR_TIMEOUT_S):
                    await indicator.show(signal)
            except (DriverError, TimeoutError) as exc:
                self._device_error(indicator.device_id, exc)

        task = asyncio.create_task(show())
        self._indicator_tasks.add(task)
        task.add_done_callback(self._indicator_tasks.discard)

    def _device_error(self, device_id: str, exc: Exception) -> None:
        self.metrics.device_errors.inc(self.setup.lane_id, device_id, type(exc).__name__)
        self._log.warning("device error", device_id=device_id, error_type=type(exc).__name__)

    def _count(self, record: ScanDecided, latency_s: float) -> None:
        decision = record.decision
        self.counters.scans += 1
        self.counters.last_scan_at = record.ts
        if decision.verdict is Verdict.ALLOW:
            self.counters.allowed += 1
        else:
            self.counters.denied += 1
        reason = decision.reason.value if decision.reason else ""
        self.metrics.scans.inc(self.setup.lane_id, decision.verdict.value, reason)
        self.metrics.latency.observe(latency_s)
