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
- Nothing at the door stops a lane (DESIGN §5): an unexpected fault while deciding a scan is
  journalled as a deny with reason internal_error (and logged with its type and place, never
  its text), and the lane takes the next scan.
- Only fresh scans are decided: a scan that waited longer than ``scan_max_age_s``, or that
  arrived while the gate was open for someone else, is journalled as a deny with reason
  lane_busy and opens nothing (a scanner's reads pile up while the lane waits for a passage).
- Input the scanner's driver threw away (framer discards, scans dropped from a full queue) is
  journalled folded: at most one record per ``discard_interval_s``, carrying the count.
- A failing device is logged once ("device error") and once when it works again, however many
  scans meet it meanwhile (its driver logs "device down"/"device back" once per outage);
  every error is still counted in the metrics.
- Emergency release (gateway/emergency.py calls ``hold(released)`` and ``release()``): a
  released lane's gate is held open and a scan there is still decided and journalled but
  commands nothing (an allowed one counts as passed: nothing stops the person); a lane held
  shut keeps its gate shut and an allowed scan there is denied gate_down, detail
  {"emergency": "held_shut"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import structlog

from suishen.drivers.base import DriverError, Gate, PassageOutcome, RawScan, Signal
from suishen.gateway.devices import LaneDevices
from suishen.gateway.journal import Journal, JournalError
from suishen.gateway.metrics import Counter, Histogram
from suishen.gateway.pipeline import ScanPipeline
from suishen.gateway.records import (
    AlertKind,
    Decision,
    PassageOutcomeKind,
    PassageRecorded,
    ScanDecided,
    ScanFormat,
    Verdict,
)
from suishen.gateway.state import SiteState
from suishen.protocol.device_state import DeviceState
from suishen.protocol.framing import DiscardBurst, Discarded, DiscardFolder, DiscardReason
from suishen.protocol.reasons import Reason

log = structlog.get_logger("suishen.gateway.lane")

INDICATOR_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneSetup:
    lane_id: str
    has_passage_sensor: bool
    passage_timeout_s: float
    open_pulse_ms: int
    scan_max_age_s: float = 2.0  # older scans are journalled lane_busy, never acted on
    discard_interval_s: float = 1.0  # at most one discard record per lane per interval


_DISCARD_REASON = {
    DiscardReason.OVERLONG: Reason.OVERSIZE,
    DiscardReason.DROPPED: Reason.LANE_BUSY,
}  # every other discard (garbage, undecodable, truncated) is malformed_prefix


@dataclass(slots=True)
class LaneMetrics:
    scans: Counter  # labels: lane, verdict, reason
    latency: Histogram  # seconds, frame complete -> decision journalled
    device_errors: Counter  # labels: lane, device, error
    journal_failures: Counter  # labels: lane
    gate_opens: Counter | None = None  # labels: lane; open commands the gate took


@dataclass(slots=True)
class LaneCounters:
    scans: int = 0
    allowed: int = 0
    denied: int = 0
    failed_closed: int = 0
    gate_opens: int = 0
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
        on_decided: Callable[[ScanDecided, int], None] | None = None,
    ) -> None:
        self.setup = setup
        self.devices = devices
        self.pipeline = pipeline
        self.state = state
        self.journal = journal
        self.metrics = metrics
        self.counters = LaneCounters()
        self._clock = clock
        # Told of each journalled scan the person at the door sees a verdict for (the lane
        # display); it must not block: it is called inline, and a fault in it is only logged.
        self._on_decided = on_decided
        self._stopping = False
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._indicator_tasks: set[asyncio.Task[None]] = set()
        self._log = log.bind(lane_id=setup.lane_id)
        self._folder = DiscardFolder(interval_s=setup.discard_interval_s)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._gate_free_mono = 0.0  # when the gate last closed behind someone (monotonic)
        self._failing: set[str] = set()  # devices logged "down" and not working since
        self.emergency: str | None = None  # "released" | "held_shut" during an emergency

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Take scans until stop(); one scan at a time (a turnstile serves one person)."""
        self._task = asyncio.current_task()
        structlog.contextvars.bind_contextvars(lane_id=self.setup.lane_id)
        async for raw in self.devices.scanner.scans():
            self._busy = True
            try:
                await self.handle(raw)
            except Exception as exc:  # noqa: BLE001 - last resort: a lane never stops on a scan
                self._log.error("lane fault after a scan", **_fault(exc))
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
        """Journal any discards still folded, then wait for indicator and journal tasks."""
        self._flush_discards(force=True)
        for task in list(self._indicator_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ discarded input

    def discarded(self, discarded: Discarded) -> None:
        """The scanner's driver threw input away: journal it as a denied, unreadable scan,
        folded (at most one record per discard_interval_s, counting the rest into it)."""
        burst = self._folder.add(discarded, time.monotonic())
        if burst is not None:
            self._record_burst(burst)
        elif self._flush_timer is None:
            self._arm_flush()

    def _arm_flush(self) -> None:
        deadline = self._folder.deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        self._flush_timer = loop.call_later(delay, self._flush_discards)

    def _flush_discards(self, *, force: bool = False) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        burst = self._folder.flush(time.monotonic(), force=force)
        if burst is not None:
            self._record_burst(burst)
        if self._folder.pending:
            self._arm_flush()

    def _record_burst(self, burst: DiscardBurst) -> None:
        reason = _DISCARD_REASON.get(burst.reason, Reason.MALFORMED_PREFIX)
        record = ScanDecided(
            ts=self._clock(),
            site_id=self.pipeline.lane.site_id,
            lane_id=self.setup.lane_id,
            direction=self.pipeline.lane.direction,
            format=ScanFormat.UNKNOWN,
            decision=Decision(verdict=Verdict.DENY, reason=reason),
            person=None,
            zone=self.pipeline.lane.zone,
            detail={
                "discarded": burst.count,
                "bytes": burst.byte_count,
                "kinds": {kind.value: n for kind, n in burst.kinds},
                "span_ms": round((burst.last_at - burst.first_at) * 1000),
            },
        )
        self._spawn(self._journal_discard(record, burst))

    async def _journal_discard(self, record: ScanDecided, burst: DiscardBurst) -> None:
        # Stamped as it is queued (in this same step), so a lane's rows stay in time order.
        record = replace(record, ts=self._clock())
        try:
            seq = await self.journal.append(record)
        except JournalError as exc:
            self.metrics.journal_failures.inc(self.setup.lane_id)
            self._log.error("discarded input not journalled", error=str(exc), discarded=burst.count)
            return
        self._count(record, 0.0)
        self._show(Signal.deny())
        self._log.info(
            "scan",
            seq=seq,
            verdict="deny",
            reason=record.decision.reason.value if record.decision.reason else None,
            format=ScanFormat.UNKNOWN.value,
            discarded=burst.reason.value,
            count=burst.count,
            bytes=burst.byte_count,
        )

    # ------------------------------------------------------------------ one scan

    async def handle(self, raw: RawScan) -> ScanDecided:
        now = self._clock()
        busy = self._staleness(raw)
        sensor = self.setup.has_passage_sensor and self.devices.gate is not None
        try:
            record = self.pipeline.decide(raw, now)
            if busy is not None:
                record = self._lane_busy(record, busy)
            elif record.decision.verdict is Verdict.ALLOW and self._gate_down():
                record = self._gate_down_denial(record)
            if self.emergency is not None:
                record = self._in_emergency(record)
            self.state.apply(record, sensor=sensor)
        except Exception as exc:  # noqa: BLE001 - any fault in deciding fails closed, journalled
            record = self._internal_error(raw, now, exc)
        if record.decision.reason is Reason.LANE_BUSY:
            # Nothing to actuate: the lane goes on at once and the journal's group commit
            # takes a pile of stale scans in a few transactions, not one fsync each.
            self._spawn(self._journal_busy(record))
            await asyncio.sleep(0)  # the task queues its row now: a lane's rows stay in order
            return record
        try:
            seq = await self.journal.append(record)
        except Exception as exc:  # noqa: BLE001 - JournalError, or a record it cannot take
            return await self._fail_closed(record, raw, exc)
        latency_s = time.monotonic() - raw.received_mono
        allowed = record.decision.verdict is Verdict.ALLOW
        self._tell(record, seq)
        held = self.emergency is not None
        if allowed and not held:
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
            await (self._held_passage(record, seq) if held else self._passage(record, seq))
        return record

    # ------------------------------------------------------------------ emergency release

    async def hold(self, *, released: bool) -> None:
        """Emergency: hold the gate open (released) or shut; scans stop commanding it."""
        self.emergency = "released" if released else "held_shut"
        await self._command_gate(lambda gate: gate.hold_open() if released else gate.keep_shut())

    async def release(self) -> None:
        """The emergency ended: the gate back to normal (shut)."""
        self.emergency = None
        await self._command_gate(lambda gate: gate.release_hold())

    def _in_emergency(self, record: ScanDecided) -> ScanDecided:
        detail = {**(record.detail or {}), "emergency": self.emergency}
        if self.emergency == "held_shut" and record.decision.verdict is Verdict.ALLOW:
            decision = Decision(
                verdict=Verdict.DENY, reason=Reason.GATE_DOWN, alerts=record.decision.alerts
            )
            return replace(record, decision=decision, detail=detail)
        return replace(record, detail=detail)

    async def _held_passage(self, record: ScanDecided, seq: int) -> None:
        """An allowed scan at a gate held open: the person passes (nothing stops them)."""
        if not self.setup.has_passage_sensor:
            return  # the allowed scan itself moved the person
        passage = PassageRecorded(
            ts=self._clock(),
            site_id=record.site_id,
            lane_id=record.lane_id,
            scan_seq=seq,
            outcome=PassageOutcomeKind.PASSED,
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

    def _staleness(self, raw: RawScan) -> str | None:
        """Why a scan is not fresh (None: it is): it arrived while the gate was open for
        someone else, or it waited longer than the lane's scan age limit."""
        if raw.received_mono < self._gate_free_mono:
            return "gate_open"
        if time.monotonic() - raw.received_mono > self.setup.scan_max_age_s:
            return "waited"
        return None

    async def _journal_busy(self, record: ScanDecided) -> None:
        """Journal a lane_busy scan (no indicator: the person at the door now did not make it)."""
        # Stamped as it is queued (in this same step), so a lane's rows stay in time order.
        record = replace(record, ts=self._clock())
        try:
            seq = await self.journal.append(record)
        except Exception as exc:  # noqa: BLE001 - JournalError, or a record it cannot take
            self.metrics.journal_failures.inc(self.setup.lane_id)
            self._log.error("stale scan not journalled", error_type=type(exc).__name__)
            return
        self._count(record, 0.0)
        self._log.info(
            "scan",
            seq=seq,
            verdict=record.decision.verdict.value,
            reason=Reason.LANE_BUSY.value,
            format=record.format.value,
            busy=(record.detail or {}).get("busy"),
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._indicator_tasks.add(task)
        task.add_done_callback(self._indicator_tasks.discard)

    def _lane_busy(self, record: ScanDecided, why: str) -> ScanDecided:
        """The decided record, turned into a lane_busy denial (a watchlist alert stays: the
        person was at the door)."""
        alerts = tuple(a for a in record.decision.alerts if a.kind is AlertKind.WATCHLIST)
        waited_ms = round((time.monotonic() - (record.received_mono or 0.0)) * 1000)
        return replace(
            record,
            decision=Decision(verdict=Verdict.DENY, reason=Reason.LANE_BUSY, alerts=alerts),
            detail={"busy": why, "waited_ms": waited_ms},
        )

    def _gate_down(self) -> bool:
        """The lane has a gate and it is not connected (down, reconnecting, in error)."""
        gate = self.devices.gate
        return gate is not None and gate.state is not DeviceState.CONNECTED

    def _gate_down_denial(self, record: ScanDecided) -> ScanDecided:
        """An allowed scan at a lane whose gate is down: the lane fails closed (the person is
        not counted inside; staff see gate_down), and failed_closed counts it."""
        self.counters.failed_closed += 1
        gate = self.devices.gate
        assert gate is not None
        # Logged once per outage, like a failed open (until the gate works again).
        self._device_error(gate.device_id, GateDownError(gate.state.value))
        return replace(
            record,
            decision=Decision(
                verdict=Verdict.DENY, reason=Reason.GATE_DOWN, alerts=record.decision.alerts
            ),
            detail={"gate": gate.state.value},
        )

    def _internal_error(self, raw: RawScan, now: float, exc: Exception) -> ScanDecided:
        """A fault in deciding: the scan is a denial with reason internal_error (fail closed)."""
        fault = _fault(exc)
        self._log.error("fault deciding a scan; denied as internal_error", **fault)
        return ScanDecided(
            ts=now,
            site_id=self.pipeline.lane.site_id,
            lane_id=self.setup.lane_id,
            direction=self.pipeline.lane.direction,
            format=ScanFormat.UNKNOWN,
            decision=Decision(verdict=Verdict.DENY, reason=Reason.INTERNAL_ERROR),
            person=None,
            zone=self.pipeline.lane.zone,
            received_mono=raw.received_mono,
            detail={"error": fault["error_type"]},
        )

    async def _open(self) -> None:
        pulse_ms = self.setup.open_pulse_ms
        if await self._command_gate(lambda gate: gate.open(pulse_ms=pulse_ms)):
            self.counters.gate_opens += 1
            if self.metrics.gate_opens is not None:
                self.metrics.gate_opens.inc(self.setup.lane_id)

    async def _command_gate(self, command: Callable[[Gate], Awaitable[None]]) -> bool:
        """Send the lane's gate one command; a failure is logged (once per outage) and
        counted, never raised: a gate fault never stops the lane.  True when it was done."""
        gate = self.devices.gate
        if gate is None:
            return False
        try:
            await command(gate)
        except Exception as exc:  # noqa: BLE001 - a gate fault never stops the lane
            self._device_error(gate.device_id, exc)
            return False
        self._device_ok(gate.device_id)
        return True

    async def _passage(self, record: ScanDecided, seq: int) -> None:
        gate = self.devices.gate
        assert gate is not None
        outcome = PassageOutcomeKind.NOT_PASSED
        # Scans that arrive until the gate is free again (the passage outcome is known, before
        # it is journalled) were made while it was open for this person: lane_busy.
        if self.setup.has_passage_sensor:
            try:
                report = await gate.wait_passage(timeout_s=self.setup.passage_timeout_s)
                if report.outcome is PassageOutcome.PASSED:
                    outcome = PassageOutcomeKind.PASSED
            except Exception as exc:  # noqa: BLE001 - a gate fault never stops the lane
                self._device_error(gate.device_id, exc)
            finally:
                self._gate_free_mono = time.monotonic()
        else:
            self._gate_free_mono = time.monotonic()
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

    async def _fail_closed(self, record: ScanDecided, raw: RawScan, exc: Exception) -> ScanDecided:
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
            except Exception as gate_exc:  # noqa: BLE001 - a gate fault never stops the lane
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
            else:
                self._device_ok(indicator.device_id)

        task = asyncio.create_task(show())
        self._indicator_tasks.add(task)
        task.add_done_callback(self._indicator_tasks.discard)

    def _tell(self, record: ScanDecided, seq: int) -> None:
        if self._on_decided is None:
            return
        try:
            self._on_decided(record, seq)
        except Exception as exc:  # noqa: BLE001 - a display never stops the lane
            self._log.error("scan observer failed", **_fault(exc))

    def _device_error(self, device_id: str, exc: Exception) -> None:
        """Count every error; log a device "down" once, until it works again."""
        self.metrics.device_errors.inc(self.setup.lane_id, device_id, type(exc).__name__)
        if device_id in self._failing:
            return
        self._failing.add(device_id)
        self._log.warning(
            "device error; further errors are only counted until it works again",
            device_id=device_id,
            error_type=type(exc).__name__,
        )

    def _device_ok(self, device_id: str) -> None:
        if device_id in self._failing:
            self._failing.discard(device_id)
            self._log.info("device works again", device_id=device_id)

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


class GateDownError(Exception):
    """The lane's gate is not connected: an allowed scan failed closed (reason gate_down)."""


def _fault(exc: BaseException) -> dict[str, str]:
    """An exception as log fields: its type and where it was raised, never its message
    (which may quote the scanned text)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return {"error_type": type(exc).__name__, "where": where}
