"""The conformance suite for every ScanSource kind (trio's check_two_way_stream, per kind).

Use: a test module subclasses the suite and provides a ``harness`` fixture yielding a started
ScanSourceHarness (tests/integration/harness.py) whose source is CONNECTED::

    class TestMyReader(ScanSourceSuite):
        @pytest.fixture
        async def harness(self, tmp_path): ...

- ScanSourceSuite: what every scan source must do (texts and timestamps, order, cable pull
  and recovery, the once-down/once-back log). Its texts come from ``sample_text(i)``: short
  decimal numbers, so card readers (UHPPOTE swipes, OSDP card reads) can run it as is;
  override sample_text for sources with other constraints.
- ByteWireSuite: framing on the wire (split at every byte, garbage, overlong, wrong suffix),
  only for harnesses with a byte wire; these also implement ByteWireHarness below. Card
  readers do not subclass it, so its tests are not collected for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import pytest
from structlog.testing import capture_logs

from suishen.drivers.base import DeviceState, RawScan, ScanSource
from tests.integration.harness import ScanSourceHarness

SCAN_TIMEOUT_S = 3.0
STATE_TIMEOUT_S = 5.0


class ByteWireHarness(ScanSourceHarness, Protocol):
    """A ScanSourceHarness whose device speaks a byte stream (serial, TCP line)."""

    suffix: bytes  # the line end the driver is configured for, as the device sends it
    max_length: int  # the driver's longest accepted scan text, in bytes
    idle_flush_s: float | None  # the driver's idle flush (None: off)
    wrong_suffix: bytes  # a line end the driver is NOT configured for

    def frame(self, text: str) -> bytes:
        """The exact bytes the simulated device sends for `text` (prefix, AIM id, suffix)."""

    def discard_reasons(self) -> list[str]:
        """Reason codes of the Discarded events the driver reported so far."""


class ScanCollector:
    """Reads a source's scans() in a background task, so tests can wait with a timeout."""

    def __init__(self, source: ScanSource) -> None:
        self._source = source
        self._queue: asyncio.Queue[RawScan] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        iterator = self._source.scans()
        try:
            async for scan in iterator:
                self._queue.put_nowait(scan)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):
                    await aclose()

    async def next(self, timeout_s: float = SCAN_TIMEOUT_S) -> RawScan:
        async with asyncio.timeout(timeout_s):
            return await self._queue.get()

    async def expect_none(self, within_s: float) -> None:
        """Assert no scan arrives within `within_s` seconds."""
        with contextlib.suppress(TimeoutError):
            scan = await self.next(within_s)
            pytest.fail(f"unexpected scan of length {len(scan.text)}: {scan.text[:40]!r}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_until(predicate: Callable[[], bool], timeout_s: float = STATE_TIMEOUT_S) -> None:
    """Poll `predicate` until true (driver state has no event to wait on from outside)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 (polling another component's state)
            await asyncio.sleep(0.005)


async def wait_state(source: ScanSource, state: DeviceState) -> None:
    await wait_until(lambda: source.state is state)


class ScanSourceSuite:
    """What every ScanSource must do. Subclasses provide the ``harness`` fixture."""

    def sample_text(self, i: int) -> str:
        """The i-th text the tests send (a short decimal number: valid as a card number)."""
        return str(1000 + i)

    @pytest.fixture
    async def scans(self, harness: ScanSourceHarness) -> AsyncIterator[ScanCollector]:
        collector = ScanCollector(harness.source)
        collector.start()
        yield collector
        await collector.aclose()

    async def test_harness_source_is_connected(self, harness: ScanSourceHarness) -> None:
        """The harness hands over a started source that is CONNECTED to its simulator."""
        assert harness.source.state is DeviceState.CONNECTED
        assert harness.source.device_id

    async def test_scan_arrives_with_text_and_timestamps(
        self, harness: ScanSourceHarness, scans: ScanCollector
    ) -> None:
        """One read arrives with the exact text, the source's id, and receive timestamps
        taken between the send and the arrival (monotonic and wall clock)."""
        text = self.sample_text(1)
        mono_before, wall_before = time.monotonic(), time.time()
        await harness.send_scan(text)
        scan = await scans.next()
        mono_after, wall_after = time.monotonic(), time.time()
        assert scan.text == text
        assert scan.device_id == harness.source.device_id
        assert mono_before <= scan.received_mono <= mono_after
        assert wall_before - 0.5 <= scan.received_at <= wall_after + 0.5

    async def test_many_scans_arrive_in_order(
        self, harness: ScanSourceHarness, scans: ScanCollector
    ) -> None:
        """Twenty reads sent back to back arrive complete and in order."""
        texts = [self.sample_text(i) for i in range(20)]
        for text in texts:
            await harness.send_scan(text)
        received = [(await scans.next()).text for _ in texts]
        assert received == texts

    async def test_cable_pull_then_plug_recovers(
        self, harness: ScanSourceHarness, scans: ScanCollector
    ) -> None:
        """After a cable pull the source goes DISCONNECTED; after the plug it reconnects by
        itself (CONNECTED) and reads flow again, logging "device down" and "device back"
        exactly once each."""
        source = harness.source
        await harness.send_scan(self.sample_text(1))
        assert (await scans.next()).text == self.sample_text(1)
        with capture_logs() as logs:
            await harness.pull_cable()
            await wait_state(source, DeviceState.DISCONNECTED)
            await asyncio.sleep(0.3)  # several failed reconnect attempts while unplugged
            assert source.state is DeviceState.DISCONNECTED
            await harness.plug_cable()
            await wait_state(source, DeviceState.CONNECTED)
            await harness.send_scan(self.sample_text(2))
            assert (await scans.next()).text == self.sample_text(2)
        events = [entry["event"] for entry in logs]
        assert events.count("device down") == 1, events
        assert events.count("device back") == 1, events

    async def test_second_outage_is_logged_again(
        self, harness: ScanSourceHarness, scans: ScanCollector
    ) -> None:
        """Two outages in a row: each logs one "device down" and one "device back"."""
        source = harness.source
        with capture_logs() as logs:
            for round_no in range(2):
                await harness.pull_cable()
                await wait_state(source, DeviceState.DISCONNECTED)
                await harness.plug_cable()
                await wait_state(source, DeviceState.CONNECTED)
                await harness.send_scan(self.sample_text(round_no))
                assert (await scans.next()).text == self.sample_text(round_no)
        events = [entry["event"] for entry in logs]
        assert events.count("device down") == 2, events
        assert events.count("device back") == 2, events

    async def test_logs_never_hold_the_scanned_text(
        self, harness: ScanSourceHarness, scans: ScanCollector
    ) -> None:
        """No log entry (at any level) carries the scanned text: it is personal data."""
        text = self.sample_text(7) + "4242"
        with capture_logs() as logs:
            await harness.send_scan(text)
            assert (await scans.next()).text == text
        for entry in logs:
            assert text not in repr(entry), entry


class ByteWireSuite:
    """Framing on a byte wire. For harnesses that implement ByteWireHarness."""

    QR_TEXT = "SSC1:6BFOXN*TS0BI$ZDFRH"  # base45 alphabet, like a Suishen code

    @pytest.fixture
    async def wire_scans(self, harness: ByteWireHarness) -> AsyncIterator[ScanCollector]:
        collector = ScanCollector(harness.source)
        collector.start()
        yield collector
        await collector.aclose()

    async def test_split_at_every_byte(
        self, harness: ByteWireHarness, wire_scans: ScanCollector
    ) -> None:
        """A scan split into two writes at every possible point still arrives whole."""
        frame = harness.frame(self.QR_TEXT)
        for cut in range(1, len(frame)):
            await harness.send_raw(frame[:cut])
            await asyncio.sleep(0.002)
            await harness.send_raw(frame[cut:])
            assert (await wire_scans.next()).text == self.QR_TEXT, cut

    async def test_one_byte_at_a_time(
        self, harness: ByteWireHarness, wire_scans: ScanCollector
    ) -> None:
        """A scan written one byte per write arrives whole (and only once)."""
        for byte in harness.frame(self.QR_TEXT):
            await harness.send_raw(bytes([byte]))
            await asyncio.sleep(0.001)
        assert (await wire_scans.next()).text == self.QR_TEXT
        await wire_scans.expect_none(0.05)

    async def test_garbage_is_discarded_and_the_next_scan_arrives(
        self, harness: ByteWireHarness, wire_scans: ScanCollector
    ) -> None:
        """Control bytes and undecodable bytes ended by a line end produce no scan (a
        discard reason instead), and the next scan arrives intact."""
        marker = "MARKER"
        await harness.send_raw(harness.frame(marker).replace(b"MARKER", b"\x00\x01junk\x7f"))
        await harness.send_raw(harness.frame(marker).replace(b"MARKER", b"\xff\xfe\xfd"))
        await harness.send_scan(self.QR_TEXT)
        assert (await wire_scans.next()).text == self.QR_TEXT
        await wait_until(lambda: len(harness.discard_reasons()) >= 2)
        assert harness.discard_reasons()[:2] == ["garbage", "undecodable"]

    async def test_overlong_line_is_dropped_and_resynchronised(
        self, harness: ByteWireHarness, wire_scans: ScanCollector
    ) -> None:
        """A line past the maximum length is dropped (reason "overlong"), even when it is
        written in pieces, and the scan after it arrives intact."""
        blob = b"A" * (harness.max_length * 3)
        for start in range(0, len(blob), 97):
            await harness.send_raw(blob[start : start + 97])
        await harness.send_raw(harness.suffix)
        await harness.send_scan(self.QR_TEXT)
        assert (await wire_scans.next()).text == self.QR_TEXT
        await wait_until(lambda: "overlong" in harness.discard_reasons())
        await wire_scans.expect_none(0.05)

    async def test_longest_accepted_scan_arrives(
        self, harness: ByteWireHarness, wire_scans: ScanCollector
    ) -> None:
        """A scan exactly at the maximum length is still accepted."""
        text = "Z" * harness.max_length
        await harness.send_scan(text)
        assert (await wire_scans.next()).text == text

    async def test_wrong_suffix_never_yields_a_corrupted_scan(
        self, harness: ByteWireHarness, wire_scans: ScanCollector
    ) -> None:
        """A scan ended by a line end the driver is not set up for is either delivered
        exactly (by the idle flush) or dropped, never merged with the next scan. With an idle
        flush the next correctly framed scan arrives intact; without one, the first correct
        line end resynchronises and the scan after it arrives."""
        body = harness.frame(self.QR_TEXT)[: -len(harness.suffix)]
        await harness.send_raw(body + harness.wrong_suffix)
        following = "NEXT-" + self.QR_TEXT
        if harness.idle_flush_s is not None:
            await asyncio.sleep(harness.idle_flush_s * 2)
            await harness.send_scan(following)
        else:
            await harness.send_scan(following)
            await harness.send_scan(following)
        seen = []
        while (scan := await wire_scans.next()).text != following:
            seen.append(scan.text)
        assert all(text == self.QR_TEXT for text in seen), seen
