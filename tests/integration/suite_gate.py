"""The conformance suite for every Gate kind (trio's check_two_way_stream, per kind).

Use: a test module subclasses GateSuite and provides a ``harness`` fixture yielding a started
GateHarness (tests/integration/harness.py) whose gate is CONNECTED::

    class TestMyGate(GateSuite):
        @pytest.fixture
        async def harness(self): ...

What every gate must do: an open reaches the device; the passage outcome is PASSED when the
person passes (not before) and NOT_PASSED at the timeout when nobody does; a stalled device
gives DeviceTimeout within a bounded time and the gate works again once the device answers;
a cable pull makes calls fail fast (DeviceUnavailable or DeviceTimeout, never a hang) and the
state DISCONNECTED; after the plug the gate reconnects by itself, and "device down" and
"device back" are logged once each.

Bounds are class attributes, so a slow transport can widen them in its subclass:
``max_call_s`` (longest any call may take on a stalled or absent device) and
``state_timeout_s`` (longest until a pull or a plug shows in ``gate.state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import ClassVar

import pytest
from structlog.testing import capture_logs

from suishen.drivers.base import (
    DeviceState,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    Gate,
    PassageOutcome,
)
from tests.integration.harness import GateHarness

DOWN_ERRORS = (DeviceUnavailable, DeviceTimeout)


async def wait_for_state(
    harness: GateHarness, state: DeviceState, timeout_s: float, *, poke: bool = False
) -> None:
    """Wait until the gate reports `state`; with poke, keep calling open() (to let a gate that
    only notices a dead link on use find out), accepting the errors a down device gives."""
    gate = harness.gate
    deadline = time.monotonic() + timeout_s
    while gate.state is not state:
        if time.monotonic() > deadline:
            pytest.fail(f"gate state is {gate.state.value}, expected {state.value}")
        if poke:
            with contextlib.suppress(*DOWN_ERRORS):
                await gate.open(pulse_ms=50)
        await asyncio.sleep(0.02)


async def eventually_equal(read: object, expected: int, timeout_s: float = 2.0) -> int:
    """Poll an async counter until it reaches `expected` (the device may count just after it
    answered); returns the last value."""
    assert callable(read)
    deadline = time.monotonic() + timeout_s
    value = await read()
    while value < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        value = await read()
    return int(value)


class GateSuite:
    """Conformance tests for one Gate implementation; subclasses provide ``harness``."""

    max_call_s: ClassVar[float] = 1.0
    state_timeout_s: ClassVar[float] = 5.0
    pulse_ms: ClassVar[int] = 100

    async def test_gate_satisfies_the_protocol(self, harness: GateHarness) -> None:
        """The driver is a Gate (drivers.base), has a device id, and starts CONNECTED."""
        assert isinstance(harness.gate, Gate)
        assert harness.gate.device_id
        assert harness.gate.state is DeviceState.CONNECTED

    async def test_open_reaches_the_device(self, harness: GateHarness) -> None:
        """One open() is one open command at the device."""
        before = await harness.opens_received()
        await harness.gate.open(pulse_ms=self.pulse_ms)
        assert await eventually_equal(harness.opens_received, before + 1) == before + 1

    async def test_every_open_is_counted(self, harness: GateHarness) -> None:
        """Opens in a row (re-triggers during a pulse included) each reach the device."""
        before = await harness.opens_received()
        for _ in range(3):
            await harness.gate.open(pulse_ms=self.pulse_ms)
        assert await eventually_equal(harness.opens_received, before + 3) == before + 3

    async def test_passage_reported_when_the_person_passes(self, harness: GateHarness) -> None:
        """A person who passes gives PASSED, long before the timeout, for this device."""
        await harness.set_passage(passes=True, delay_s=0.05)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        report = await harness.gate.wait_passage(timeout_s=3.0)
        assert report.outcome is PassageOutcome.PASSED
        assert report.device_id == harness.gate.device_id
        assert 0.0 <= report.elapsed_s < 3.0

    async def test_passage_not_reported_before_it_happens(self, harness: GateHarness) -> None:
        """A person who takes 0.25 s to pass is reported after that, not at once."""
        await harness.set_passage(passes=True, delay_s=0.25)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        report = await harness.gate.wait_passage(timeout_s=3.0)
        assert report.outcome is PassageOutcome.PASSED
        assert report.elapsed_s >= 0.2

    async def test_not_passed_at_the_timeout(self, harness: GateHarness) -> None:
        """Nobody passes: NOT_PASSED, at the timeout (not before, not much after)."""
        await harness.set_passage(passes=False)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        started = time.monotonic()
        report = await harness.gate.wait_passage(timeout_s=0.2)
        took = time.monotonic() - started
        assert report.outcome is PassageOutcome.NOT_PASSED
        assert 0.15 <= took < 0.2 + self.max_call_s
        assert report.elapsed_s >= 0.15

    async def test_each_open_gets_its_own_outcome(self, harness: GateHarness) -> None:
        """A passage after one open does not count for the next open."""
        await harness.set_passage(passes=True, delay_s=0.02)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        assert (await harness.gate.wait_passage(timeout_s=3.0)).outcome is PassageOutcome.PASSED
        await harness.set_passage(passes=False)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        report = await harness.gate.wait_passage(timeout_s=0.2)
        assert report.outcome is PassageOutcome.NOT_PASSED

    async def test_keep_shut_works_and_open_still_works_after(self, harness: GateHarness) -> None:
        """keep_shut() completes on a connected device, and the gate still opens after it."""
        await harness.gate.open(pulse_ms=2000)
        await harness.gate.keep_shut()
        before = await harness.opens_received()
        await harness.gate.open(pulse_ms=self.pulse_ms)
        assert await eventually_equal(harness.opens_received, before + 1) == before + 1

    async def test_stalled_device_times_out_then_recovers(self, harness: GateHarness) -> None:
        """A device that stops answering gives DeviceTimeout within the bound, not a hang;
        once it answers again, the gate opens again."""
        await harness.stall(True)
        started = time.monotonic()
        with pytest.raises(DeviceTimeout):
            await harness.gate.open(pulse_ms=self.pulse_ms)
        assert time.monotonic() - started < self.max_call_s
        await harness.stall(False)
        await wait_for_state(harness, DeviceState.CONNECTED, self.state_timeout_s)
        before = await harness.opens_received()
        await harness.gate.open(pulse_ms=self.pulse_ms)
        assert await eventually_equal(harness.opens_received, before + 1) >= before + 1

    async def test_wait_passage_on_stalled_device_is_bounded(self, harness: GateHarness) -> None:
        """wait_passage on a device that stopped answering ends by timeout + bound: with a
        driver error or NOT_PASSED, never PASSED and never a hang."""
        await harness.set_passage(passes=False)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        await harness.stall(True)
        started = time.monotonic()
        try:
            report = await harness.gate.wait_passage(timeout_s=0.3)
        except DriverError:
            pass
        else:
            assert report.outcome is PassageOutcome.NOT_PASSED
        assert time.monotonic() - started < 0.3 + self.max_call_s
        await harness.stall(False)

    async def test_cable_pull_fails_fast_and_reports_disconnected(
        self, harness: GateHarness
    ) -> None:
        """After a cable pull every call fails fast (DeviceUnavailable or DeviceTimeout) and
        the state becomes DISCONNECTED."""
        await harness.pull_cable()
        await wait_for_state(harness, DeviceState.DISCONNECTED, self.state_timeout_s, poke=True)
        for call in (
            lambda: harness.gate.open(pulse_ms=self.pulse_ms),
            harness.gate.keep_shut,
        ):
            started = time.monotonic()
            with pytest.raises(DOWN_ERRORS):
                await call()
            assert time.monotonic() - started < self.max_call_s
        started = time.monotonic()
        try:
            report = await harness.gate.wait_passage(timeout_s=0.2)
        except DOWN_ERRORS:
            pass
        else:
            assert report.outcome is PassageOutcome.NOT_PASSED
        assert time.monotonic() - started < 0.2 + self.max_call_s

    async def test_pull_during_wait_passage_is_bounded(self, harness: GateHarness) -> None:
        """A device that goes away while the gate waits for the passage ends the wait by
        timeout + bound, with a driver error or NOT_PASSED."""
        await harness.set_passage(passes=False)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        waiting = asyncio.create_task(harness.gate.wait_passage(timeout_s=1.0))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await harness.pull_cable()
        try:
            report = await asyncio.wait_for(waiting, timeout=1.0 + self.max_call_s)
        except DriverError:
            pass
        else:
            assert report.outcome is PassageOutcome.NOT_PASSED
        assert time.monotonic() - started < 1.0 + self.max_call_s

    async def test_plug_reconnects_by_itself_and_logs_once(self, harness: GateHarness) -> None:
        """After the plug the gate reconnects without being called, opens again, and the
        outage is logged as one "device down" and one "device back"."""
        with capture_logs() as logs:
            await harness.pull_cable()
            await wait_for_state(harness, DeviceState.DISCONNECTED, self.state_timeout_s, poke=True)
            for _ in range(3):  # more failures while down must not log again
                with contextlib.suppress(*DOWN_ERRORS):
                    await harness.gate.open(pulse_ms=self.pulse_ms)
            await asyncio.sleep(0.1)
            await harness.plug_cable()
            await wait_for_state(harness, DeviceState.CONNECTED, self.state_timeout_s)
            before = await harness.opens_received()
            await harness.gate.open(pulse_ms=self.pulse_ms)
            assert await eventually_equal(harness.opens_received, before + 1) >= before + 1
        mine = [e for e in logs if e.get("device_id") == harness.gate.device_id]
        events = [e["event"] for e in mine]
        assert events.count("device down") == 1, events
        assert events.count("device back") == 1, events
        assert events.index("device down") < events.index("device back")

    async def test_survives_two_outages(self, harness: GateHarness) -> None:
        """Pull and plug twice: the gate comes back each time and still reports passages."""
        for _ in range(2):
            await harness.pull_cable()
            await wait_for_state(harness, DeviceState.DISCONNECTED, self.state_timeout_s, poke=True)
            await harness.plug_cable()
            await wait_for_state(harness, DeviceState.CONNECTED, self.state_timeout_s)
        await harness.set_passage(passes=True, delay_s=0.02)
        await harness.gate.open(pulse_ms=self.pulse_ms)
        assert (await harness.gate.wait_passage(timeout_s=3.0)).outcome is PassageOutcome.PASSED
