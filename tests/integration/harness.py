"""Harnesses that pair a real driver with its simulator, for the per-kind conformance suites.

One suite per device kind (trio's check_two_way_stream): tests/integration/suite_scan_source.py
and tests/integration/suite_gate.py hold the tests; every implementation of the kind provides a
fixture yielding one of these harnesses, and its test module subclasses the suite.
"""

from __future__ import annotations

from typing import Protocol

from suishen.drivers.base import Gate, ScanSource


class ScanSourceHarness(Protocol):
    """A started ScanSource wired to a simulator that can be told what to send."""

    source: ScanSource

    async def send_scan(self, text: str) -> None:
        """Make the simulated device read `text` (a QR text or a card number) and send it."""

    async def send_raw(self, data: bytes) -> None:
        """Put raw bytes on the wire (framing tests); harnesses without a byte wire raise
        NotImplementedError and the suite's wire tests are not collected for them."""

    async def pull_cable(self) -> None:
        """Cut the link (close the pty, stop the server, drop the socket)."""

    async def plug_cable(self) -> None:
        """Restore the link; the driver must reconnect by itself."""


class GateHarness(Protocol):
    """A started Gate wired to a simulator that counts commands and can simulate passage."""

    gate: Gate

    async def opens_received(self) -> int:
        """How many open commands the simulated device has received so far."""

    async def set_passage(self, *, passes: bool, delay_s: float = 0.0) -> None:
        """Whether the next person passes after an open, and after how long."""

    async def stall(self, stalled: bool) -> None:
        """Make the device stop answering (True) or answer again (False)."""

    async def pull_cable(self) -> None:
        """Stop the device (server down / link cut)."""

    async def plug_cable(self) -> None:
        """Restart the device; the driver must reconnect by itself."""
