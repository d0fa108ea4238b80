"""A Gate on a Modbus relay board or turnstile controller, over Modbus TCP or Modbus RTU.

What is sent comes from protocol.turnstile (the lane's TurnstileMap); how it is sent is
drivers/modbus_adapter.py, the one module that imports pymodbus.

- ``open(pulse_ms)``: one write. With the board's pulse function (``pulse_register``) the board
  times the pulse; otherwise the coil is written ON and a background task writes it OFF after
  ``pulse_ms`` (re-opening during a pulse restarts it). Counter sensing first reads the
  passage counter as the baseline (one more transaction); latch sensing needs nothing, the
  board clears the latch on the open command itself.
- ``wait_passage(timeout_s)``: polls the latch (or the counter) every ``poll_interval_s``;
  PASSED as soon as it is seen, NOT_PASSED after one last poll at the timeout.
- ``keep_shut()``: cancels a pending pulse and writes the coil OFF.
- ``hold_open()`` (emergency release): cancels a pending pulse and writes the open coil ON with
  no release; the supervisor's probe after a reconnect writes it ON again (not OFF) while held.
  ``open()``/``keep_shut()`` change nothing while held; ``release_hold()`` writes it OFF.
- Every transaction has a deadline (``command_timeout_s``): a device that answers late or never
  raises DeviceTimeout; a call while the link is down raises DeviceUnavailable at once. After
  ``max_missed`` timeouts in a row the device counts as gone and the link is rebuilt.
- A supervisor task connects, probes the device (it releases the open coil: the safe state
  after any restart), reports CONNECTED, waits for the link to drop, reports DISCONNECTED and
  reconnects with Backoff. DeviceStatus logs "device down" once and "device back" once. A device
  that answers the probe with a Modbus exception (the lane map does not fit it) is ERROR.

Construction::

    gate = ModbusGate(device_id="lane-1/gate", url="tcp://127.0.0.1:1502",
                      lane=TurnstileMap(unit=1, open_coil=0, passage_input=0))
    await gate.start(); await gate.open(pulse_ms=500)
    report = await gate.wait_passage(timeout_s=5.0)
"""

from __future__ import annotations

import asyncio
import time

import structlog

from suishen.drivers.base import (
    DeviceConfigError,
    DeviceProtocolError,
    DeviceStatus,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    PassageOutcome,
    PassageReport,
    StateListener,
    reconnect_backoff,
)
from suishen.drivers.modbus_adapter import Answer, ModbusClientLink, stop_task
from suishen.protocol.backoff import Backoff
from suishen.protocol.device_state import DeviceState
from suishen.protocol.turnstile import (
    Command,
    SerialSettings,
    TurnstileConfigError,
    TurnstileMap,
    WriteCoil,
    check_pulse_ms,
    keep_shut_command,
    open_command,
    parse_endpoint,
    passage_query,
    passage_seen,
    release_command,
)

log = structlog.get_logger("suishen.drivers.modbus_gate")


class ModbusGate:
    """A Gate (drivers.base) on a Modbus device; see the module docstring."""

    def __init__(
        self,
        *,
        device_id: str,
        url: str,
        lane: TurnstileMap | None = None,
        serial: SerialSettings | None = None,
        command_timeout_s: float = 0.25,
        connect_timeout_s: float = 1.0,
        poll_interval_s: float = 0.01,
        max_missed: int = 3,
        backoff: Backoff | None = None,
        on_state: StateListener | None = None,
    ) -> None:
        if not device_id:
            raise DeviceConfigError("device_id must not be empty", device_id="?")
        try:
            endpoint = parse_endpoint(url)
        except TurnstileConfigError as exc:
            raise DeviceConfigError(str(exc), device_id=device_id) from exc
        if command_timeout_s <= 0 or connect_timeout_s <= 0 or poll_interval_s <= 0:
            raise DeviceConfigError("timeouts and poll interval must be > 0", device_id=device_id)
        if max_missed < 1:
            raise DeviceConfigError("max_missed must be >= 1", device_id=device_id)
        self.device_id = device_id
        self.lane = lane or TurnstileMap()
        self.endpoint = endpoint
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.poll_interval_s = poll_interval_s
        self.max_missed = max_missed
        self.status = DeviceStatus(device_id, on_change=on_state)
        self._backoff = backoff or reconnect_backoff()
        self._link = ModbusClientLink(
            endpoint, device_id=device_id, serial=serial, on_lost=self._mark_lost
        )
        self._log = log.bind(device_id=device_id)
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._missed = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._opened_mono: float | None = None
        self._baseline: int | None = None
        self._closed = False
        self._held = False

    # ------------------------------------------------------------------ Device

    @property
    def state(self) -> DeviceState:
        return self.status.state

    async def start(self) -> None:
        if self._supervisor is None and not self._closed:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"gate:{self.device_id}")

    async def aclose(self) -> None:
        self._closed = True
        for task in (self._supervisor, self._release_task):
            await stop_task(task)
        self._supervisor = self._release_task = None
        self._link.close()

    async def _supervise(self) -> None:
        while not self._closed:
            try:
                await self._link.connect(timeout_s=self.connect_timeout_s)
                self._missed = 0
                self._lost.clear()
                # Probe, and put the relay in its safe state after any restart (held open
                # during an emergency release).
                await self._link.execute(self._resting_command(), timeout_s=self.command_timeout_s)
            except DeviceProtocolError as exc:
                # It answers, but not to our lane map (wrong address, unsupported function).
                self._link.close()
                self.status.set(DeviceState.ERROR, str(exc))
                await asyncio.sleep(self._backoff.next_delay())
                continue
            except DriverError as exc:
                self._link.close()
                self.status.set(DeviceState.DISCONNECTED, str(exc))
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self._backoff.reset()
            self.status.set(DeviceState.CONNECTED)
            await self._lost.wait()
            self._link.close()
            self.status.set(DeviceState.DISCONNECTED, self._lost_reason)
            await asyncio.sleep(self._backoff.next_delay())

    def _mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # ------------------------------------------------------------------ transactions

    async def _execute(self, command: Command) -> Answer:
        if self.status.state is not DeviceState.CONNECTED or self._lost.is_set():
            raise DeviceUnavailable(
                f"device is {self.status.state.value}", device_id=self.device_id
            )
        try:
            answer = await self._link.execute(command, timeout_s=self.command_timeout_s)
        except DeviceTimeout:
            self._missed += 1
            if self._missed >= self.max_missed:
                self._mark_lost(f"no answer to {self._missed} requests in a row")
            raise
        except DeviceUnavailable as exc:
            self._mark_lost(str(exc))
            raise
        self._missed = 0
        return answer

    # ------------------------------------------------------------------ Gate

    def _resting_command(self) -> WriteCoil:
        if self._held:
            return WriteCoil(unit=self.lane.unit, address=self.lane.open_coil, value=True)
        return keep_shut_command(self.lane)

    @property
    def held(self) -> bool:
        return self._held

    async def hold_open(self) -> None:
        """Write the open coil ON and keep it on (no pulse) until release_hold(); re-applied
        after a reconnect. Raises DeviceUnavailable/DeviceTimeout when it could not be written
        now (the hold stays wanted: the supervisor applies it when the link is back)."""
        self._held = True
        self._cancel_release()
        await self._execute(self._resting_command())

    async def release_hold(self) -> None:
        """End the hold: the coil OFF (shut), normal operation again."""
        self._held = False
        await self.keep_shut()

    async def open(self, *, pulse_ms: int = 500) -> None:
        """Command the gate open; raises DeviceUnavailable/DeviceTimeout, never hangs."""
        if self._held:
            return  # already open, and it must not be pulsed shut
        try:
            check_pulse_ms(pulse_ms)
        except TurnstileConfigError as exc:
            raise DeviceConfigError(str(exc), device_id=self.device_id) from exc
        self._cancel_release()
        if self.lane.passage_counter is not None:
            answer = await self._execute(passage_query(self.lane))
            self._baseline = int(answer[0]) if answer else None
        self._opened_mono = time.monotonic()
        await self._execute(open_command(self.lane, pulse_ms))
        release = release_command(self.lane)
        if release is not None:
            self._release_task = asyncio.create_task(
                self._release_after(pulse_ms / 1000, release), name=f"pulse:{self.device_id}"
            )

    async def _release_after(self, delay_s: float, release: Command) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self._execute(release)
        except DriverError as exc:
            # The lane goes on; the supervisor releases the coil again when the link is back.
            self._log.warning("pulse release failed", error=str(exc))

    def _cancel_release(self) -> None:
        task, self._release_task = self._release_task, None
        if task is not None and not task.done():
            task.cancel()

    async def keep_shut(self) -> None:
        """Make sure the gate stays shut: cancel a pending pulse, write the coil OFF."""
        if self._held:
            return  # held open (emergency release): only release_hold() shuts it
        self._cancel_release()
        await self._execute(keep_shut_command(self.lane))

    async def wait_passage(self, *, timeout_s: float) -> PassageReport:
        """After open(): PASSED when the sensor reports a passage, else NOT_PASSED at timeout."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        opened = self._opened_mono if self._opened_mono is not None else started
        deadline = loop.time() + max(0.0, timeout_s)
        query = passage_query(self.lane)
        while True:
            answer = await self._execute(query)
            if answer and passage_seen(self.lane, answer, self._baseline):
                return self._report(PassageOutcome.PASSED, opened)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self._report(PassageOutcome.NOT_PASSED, opened)
            await asyncio.sleep(min(self.poll_interval_s, remaining))

    def _report(self, outcome: PassageOutcome, opened: float) -> PassageReport:
        return PassageReport(
            device_id=self.device_id, outcome=outcome, elapsed_s=time.monotonic() - opened
        )
