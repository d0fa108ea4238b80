"""Nothing at the door stops a lane (DESIGN §5), end to end over a pty scanner and a Modbus
turnstile simulator driven by the real GatewayService:

- a fault while deciding one scan is journalled as internal_error and the lane goes on;
- a flood of garbage on the scanner wire is folded into a handful of journal rows;
- scans that piled up while the gate was open for someone else, or that waited too long, are
  journalled as lane_busy and open nothing;
- a gate that went away is logged once, and once when it is back;
- every scan row carries its real frame-to-commit latency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from suishen.demo.simsite import LaneSpec
from suishen.drivers.base import RawScan, ScanKind
from suishen.gateway.journal import JournalRow
from suishen.gateway.pipeline import Classified
from suishen.protocol.codes import Identity
from tests.integration.gateway_fixtures import (
    RunningGateway,
    cnid,
    cti_of,
    ric,
    running_gateway,
)

LANE = "in-1"
NORMAL_LATENCY_S = 0.5  # a scan is decided and durable well within this on a loaded machine


def person(i: int) -> Identity:
    number = cnid(dt.date(1980 + i % 20, 1 + i % 12, 1 + i % 28), f"{100 + i:03d}")
    return ric(number, dob=f"{number[6:10]}-{number[10:12]}-{number[12:14]}")


def detail(row: JournalRow) -> dict[str, Any]:
    assert row.detail is not None
    value: dict[str, Any] = json.loads(row.detail)
    return value


async def rows_until(gw: RunningGateway, done: Any, *, timeout_s: float = 10.0) -> list[JournalRow]:
    """Every journal row so far, once `done(rows)` holds."""
    async with asyncio.timeout(timeout_s):
        while True:
            await gw.refresh()
            if done(gw.rows):
                return list(gw.rows)
            await asyncio.sleep(0.02)


def lane_scans(rows: list[JournalRow], lane_id: str = LANE) -> list[JournalRow]:
    return [r for r in rows if r.kind == "scan" and r.lane_id == lane_id]


async def test_a_fault_in_deciding_is_journalled_and_the_lane_goes_on(tmp_path: Path) -> None:
    """A decision component that raises for one code id (a fault injected into the lane's real
    pipeline at its classify boundary) does not crash the lane: each of three crafted scans is
    journalled as a deny with reason internal_error (and logged with the fault's type, never
    the scanned text), the turnstile is not opened, and a valid scan right after is allowed,
    opens the gate and is decided within normal latency, without a lane restart."""
    async with running_gateway(tmp_path, lanes=[LaneSpec(id=LANE)]) as gw:
        lane = gw.service.lanes[LANE]
        crafted = gw.code(person(1))
        poisoned = cti_of(crafted)
        real_classify = lane.pipeline.classify

        def classify(raw: RawScan, now: float) -> Classified:
            result = real_classify(raw, now)
            subject = result.subject
            if getattr(subject, "cti", None) == poisoned:
                raise KeyError("injected fault for one code id")
            return result

        lane.pipeline.classify = classify  # type: ignore[method-assign]
        opens = gw.site.opens(LANE)
        with capture_logs() as logs:
            for _ in range(3):
                await gw.site.scan(LANE, crafted)
            good = gw.code(person(2))
            sent = time.monotonic()
            await gw.site.scan(LANE, good)
            results = [await gw.next_result(LANE) for _ in range(4)]
            decided_s = time.monotonic() - sent
        assert [(r.verdict, r.reason) for r in results[:3]] == [("deny", "internal_error")] * 3
        assert all(detail(r.row) == {"error": "KeyError"} for r in results[:3])
        assert (results[3].verdict, results[3].row.cti) == ("allow", cti_of(good))
        assert results[3].passage is not None and results[3].passage.outcome == "passed"
        assert gw.site.opens(LANE) == opens + 1
        assert decided_s < NORMAL_LATENCY_S + 0.2  # + the turnstile's simulated passage
        faults = [e for e in logs if e["event"].startswith("fault deciding a scan")]
        assert len(faults) == 3
        assert all(e["error_type"] == "KeyError" and "where" in e for e in faults)
        assert not any("crashed" in e["event"] for e in logs)
        assert crafted not in repr(logs)


async def test_a_flood_of_garbage_is_folded_and_a_valid_scan_still_opens(tmp_path: Path) -> None:
    """40 KB of "\\x01\\r" on the scanner's pty (20,000 garbage lines) becomes a handful of
    journal rows, each a malformed_prefix denial carrying its count (together 20,000), not
    20,000 rows; a valid scan right after the flood is allowed and opens the turnstile."""
    async with running_gateway(tmp_path, lanes=[LaneSpec(id=LANE)]) as gw:
        opens = gw.site.opens(LANE)
        with capture_logs() as logs:
            await gw.send_raw(LANE, b"\x01\r" * 20_000)
            good = gw.code(person(3))
            await gw.site.scan(LANE, good)
            rows = await rows_until(
                gw,
                lambda rows: (
                    sum(detail(r).get("discarded", 0) for r in lane_scans(rows) if r.detail)
                    >= 20_000
                    and any(r.verdict == "allow" for r in lane_scans(rows))
                ),
            )
        scans = lane_scans(rows)
        folded = [r for r in scans if r.verdict == "deny"]
        assert 1 <= len(folded) <= 6, len(folded)
        assert {r.reason for r in folded} == {"malformed_prefix"}
        assert sum(detail(r)["discarded"] for r in folded) == 20_000
        assert all(detail(r)["kinds"] == {"garbage": detail(r)["discarded"]} for r in folded)
        allowed = [r for r in scans if r.verdict == "allow"]
        assert [r.cti for r in allowed] == [cti_of(good)]
        await rows_until(gw, lambda rows: any(r.kind == "passage" for r in rows))
        assert gw.site.opens(LANE) == opens + 1
        assert len([e for e in logs if e["event"] == "scan"]) <= 8


async def test_scans_that_piled_up_while_the_gate_was_open_are_lane_busy(tmp_path: Path) -> None:
    """A turnstile nobody walks through: the lane waits out its passage timeout (1.5 s) while
    two more people scan. Their scans are journalled as lane_busy (detail: gate_open) when the
    lane frees, and the gate is not opened for them; a fresh scan after that opens it."""
    spec = LaneSpec(id=LANE, passage_timeout_s=1.5)
    async with running_gateway(tmp_path, lanes=[spec]) as gw:
        turnstile = gw.site.lanes[LANE].turnstile
        assert turnstile is not None
        turnstile.set_passage(pass_probability=0.0)
        opens = gw.site.opens(LANE)
        first, second, third = (gw.code(person(i)) for i in (4, 5, 6))
        await gw.site.scan(LANE, first)
        await asyncio.sleep(0.3)
        await gw.site.scan(LANE, second)
        await gw.site.scan(LANE, third)
        results = [await gw.next_result(LANE) for _ in range(3)]
        assert results[0].verdict == "allow"
        assert results[0].passage is not None and results[0].passage.outcome == "not_passed"
        for result, code in zip(results[1:], (second, third), strict=True):
            assert (result.verdict, result.reason) == ("deny", "lane_busy")
            assert result.row.cti == cti_of(code)
            assert detail(result.row)["busy"] == "gate_open"
        assert gw.site.opens(LANE) == opens + 1
        turnstile.set_passage(pass_probability=1.0)
        fresh = await gw.scan(LANE, gw.code(person(7)))
        assert fresh.verdict == "allow"
        assert gw.site.opens(LANE) == opens + 2
        status = await gw.status()
        assert status["lanes"][0]["failed_closed"] == 0


async def test_a_scan_older_than_the_age_limit_is_lane_busy(tmp_path: Path) -> None:
    """A valid scan that has waited 3 s (more than the default 2 s scan age limit) for the
    lane is journalled as lane_busy (detail: waited) and opens nothing; the same code read
    fresh is then allowed (the stale read did not count as a use of the code)."""
    async with running_gateway(tmp_path, lanes=[LaneSpec(id=LANE)]) as gw:
        lane = gw.service.lanes[LANE]
        code = gw.code(person(8))
        opens = gw.site.opens(LANE)
        stale = RawScan(
            device_id=f"{LANE}/scanner",
            kind=ScanKind.QR,
            text=code,
            received_mono=time.monotonic() - 3.0,
            received_at=time.time() - 3.0,
        )
        record = await lane.handle(stale)
        assert record.decision.reason is not None
        assert record.decision.reason.value == "lane_busy"
        result = await gw.next_result(LANE)
        assert (result.verdict, result.reason) == ("deny", "lane_busy")
        assert detail(result.row)["busy"] == "waited"
        assert detail(result.row)["waited_ms"] >= 3000
        assert gw.site.opens(LANE) == opens
        assert (await gw.scan(LANE, code)).verdict == "allow"
        assert gw.site.opens(LANE) == opens + 1


async def test_a_gate_that_went_away_is_logged_once_and_back_once(tmp_path: Path) -> None:
    """The turnstile's Modbus server goes away while ten people scan in quick succession:
    every scan is journalled (allowed while the open fails, or denied gate_down once the driver
    knows the gate is down), the lane logs one "device error" for the gate, not ten, whichever
    way each scan went, and the driver one "device down"; when the turnstile is back, the next
    scan opens it and each side logs "back" once."""
    async with running_gateway(tmp_path, lanes=[LaneSpec(id=LANE, passage_timeout_s=0.2)]) as gw:
        turnstile = gw.site.lanes[LANE].turnstile
        assert turnstile is not None
        gate_id = f"{LANE}/gate"
        with capture_logs() as logs:
            await turnstile.drop()
            for i in range(10):
                await gw.site.scan(LANE, gw.code(person(20 + i)))
            results = [await gw.next_result(LANE, timeout_s=15) for _ in range(10)]
            assert all(r.row.verdict in ("allow", "deny") for r in results)
            await turnstile.restore()
            async with asyncio.timeout(10):
                while True:
                    result = await gw.scan(LANE, gw.code(person(40)))
                    if result.passage is not None and result.passage.outcome == "passed":
                        break
        events = [e["event"] for e in logs if e.get("device_id") == gate_id]
        assert events.count("device down") == 1, events
        assert events.count("device back") == 1, events
        lane_errors = [e for e in events if e.startswith("device error")]
        assert len(lane_errors) == 1, events
        assert events.count("device works again") == 1, events


async def test_scan_rows_carry_their_frame_to_commit_latency(tmp_path: Path) -> None:
    """latency_us of a scan row is the time from the frame's arrival to the journal commit:
    more than zero, and below the time the test measured around the whole scan."""
    async with running_gateway(tmp_path, lanes=[LaneSpec(id=LANE)]) as gw:
        for i in range(3):
            started = time.monotonic()
            result = await gw.scan(LANE, gw.code(person(50 + i)))
            elapsed_us = (time.monotonic() - started) * 1e6
            latency = result.row.latency_us
            assert latency is not None
            assert 0 < latency < elapsed_us


async def test_scans_dropped_from_a_full_queue_are_journalled_folded(tmp_path: Path) -> None:
    """While the lane waits out a passage timeout, the scanner reads 1,100 short lines: 1,024
    fit the driver's queue and the other 76 are dropped. The dropped ones are journalled as
    lane_busy denials folded into a few rows (kind "dropped", together 76); the queued ones
    are each journalled as lane_busy (they arrived while the gate was open) and open
    nothing; then a fresh scan opens the gate."""
    async with running_gateway(tmp_path, lanes=[LaneSpec(id=LANE, passage_timeout_s=2.0)]) as gw:
        turnstile = gw.site.lanes[LANE].turnstile
        assert turnstile is not None
        turnstile.set_passage(pass_probability=0.0)
        opens = gw.site.opens(LANE)
        await gw.site.scan(LANE, gw.code(person(60)))
        async with asyncio.timeout(5):
            while gw.site.opens(LANE) == opens:  # noqa: ASYNC110 (the simulator's count)
                await asyncio.sleep(0.005)
        await gw.send_raw(LANE, b"x\r" * 1100)  # the lane now waits out the passage (2 s)

        def dropped(rows: list[JournalRow]) -> int:
            return sum(
                detail(r)["kinds"].get("dropped", 0)
                for r in lane_scans(rows)
                if r.detail and "kinds" in detail(r)
            )

        def busy(rows: list[JournalRow]) -> list[JournalRow]:
            return [r for r in lane_scans(rows) if r.detail and detail(r).get("busy")]

        rows = await rows_until(
            gw, lambda rows: dropped(rows) >= 76 and len(busy(rows)) >= 1024, timeout_s=30
        )
        assert dropped(rows) == 76
        folded = [r for r in lane_scans(rows) if r.detail and "kinds" in detail(r)]
        assert 1 <= len(folded) <= 4
        assert {r.reason for r in folded} == {"lane_busy"}
        assert len(busy(rows)) == 1024
        assert {(r.reason, detail(r)["busy"]) for r in busy(rows)} == {("lane_busy", "gate_open")}
        first = lane_scans(rows)[0]
        assert first.verdict == "allow"
        assert gw.site.opens(LANE) == opens + 1
        turnstile.set_passage(pass_probability=1.0)
        good = gw.code(person(61))
        await gw.site.scan(LANE, good)
        rows = await rows_until(gw, lambda rows: any(r.cti == cti_of(good) for r in rows))
        assert next(r for r in rows if r.cti == cti_of(good)).verdict == "allow"
        await rows_until(gw, lambda _rows: gw.site.opens(LANE) == opens + 2)
