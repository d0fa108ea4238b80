"""THE conformance suite for every Indicator kind (a verdict shown at the door).

A harness pairs a started Indicator with the simulated device it drives and reports what the
device was told, decoded to "allow" / "deny". The suite shows: each verdict reaches the device
as the right indication, in order; an indicator whose device is gone never blocks the lane
(show() returns or raises a DriverError within a second, never hangs); after the device is
back, verdicts reach it again. Subclass IndicatorSuite and provide an async `harness` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

import pytest

from suishen.drivers.base import DriverError, Indicator, Signal
from tests.integration.suite_scan_source import wait_until

SHOW_BOUND_S = 1.0


class IndicatorHarness(Protocol):
    indicator: Indicator

    def verdicts_seen(self) -> list[str]:
        """What the device was told so far, as "allow" / "deny", in order."""

    async def pull_cable(self) -> None: ...

    async def plug_cable(self) -> None: ...

    async def connected(self) -> None:
        """Wait until the driver is connected to the device again."""


async def show_within_bound(indicator: Indicator, signal: Signal) -> None:
    """show() must come back quickly whether or not the device is there."""
    started = time.monotonic()
    with contextlib.suppress(DriverError):  # refusing is allowed; hanging is not
        await indicator.show(signal)
    assert time.monotonic() - started < SHOW_BOUND_S


class IndicatorSuite:
    async def test_verdicts_reach_the_device_in_order(self, harness: IndicatorHarness) -> None:
        """allow, deny, allow arrive at the device as the matching indications, in order."""
        for signal in (Signal.allow(), Signal.deny(), Signal.allow()):
            await show_within_bound(harness.indicator, signal)
        await wait_until(lambda: len(harness.verdicts_seen()) >= 3, 3.0)
        assert harness.verdicts_seen()[:3] == ["allow", "deny", "allow"]

    async def test_a_dead_device_never_blocks(self, harness: IndicatorHarness) -> None:
        """With the device unplugged, show() returns or raises a DriverError within a second."""
        await harness.pull_cable()
        for signal in (Signal.allow(), Signal.deny()):
            await show_within_bound(harness.indicator, signal)

    async def test_verdicts_flow_again_after_replug(self, harness: IndicatorHarness) -> None:
        """After a cable pull and plug, the next verdict reaches the device."""
        await harness.pull_cable()
        await show_within_bound(harness.indicator, Signal.deny())
        await harness.plug_cable()
        await harness.connected()
        seen = len(harness.verdicts_seen())

        async def shown() -> bool:
            await show_within_bound(harness.indicator, Signal.allow())
            await asyncio.sleep(0.05)  # let the device read what was written
            return len(harness.verdicts_seen()) > seen

        deadline = time.monotonic() + 5.0
        while not await shown():
            assert time.monotonic() < deadline, "no verdict reached the device after replug"
        assert harness.verdicts_seen()[-1] == "allow"


__all__ = ["IndicatorHarness", "IndicatorSuite", "pytest"]
