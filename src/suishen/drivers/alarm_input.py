"""A fire-alarm input: one Modbus discrete input on a board (TCP or RTU), polled.

``ModbusAlarmInput(device_id=..., url=..., unit=1, input=0, poll_interval_s=0.1)`` connects,
reads the input every ``poll_interval_s`` and hands each raw level with its monotonic time to
``on_level`` (the gateway debounces it: protocol.emergency.AlarmDebounce). Like every driver it
reconnects by itself with backoff and reports its state through a DeviceStatus ("device down"
once, "back" once). While it is down no level is reported: a missing input says nothing about
the fire (see gateway/emergency.py for why that does not declare an emergency).

The level source is pluggable: anything shaped like ``AlarmInput`` (start, aclose, state,
level, and levels handed to an ``on_level`` listener) can feed the gateway's debounce. The
other one is a UHPPOTE controller's fire-alarm input bit (drivers/uhppote_alarm.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import structlog

from suishen.drivers.base import (
    DeviceConfigError,
    DeviceProtocolError,
    DeviceStatus,
    DriverError,
    StateListener,
    reconnect_backoff,
)
from suishen.drivers.modbus_adapter import ModbusClientLink, stop_task
from suishen.protocol.backoff import Backoff
from suishen.protocol.device_state import DeviceState
from suishen.protocol.turnstile import ReadDiscreteInputs, TurnstileConfigError, parse_endpoint

log = structlog.get_logger("suishen.drivers.alarm_input")

LevelListener = Callable[[bool, float], None]  # (level, time.monotonic())


class AlarmInput(Protocol):
    """A polled fire-alarm input: levels go to the ``on_level`` it was built with; ``level``
    is the last one read (None: never read, or the device is failing)."""

    device_id: str
    level: bool | None

    @property
    def state(self) -> DeviceState: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class ModbusAlarmInput:
    """A polled Modbus discrete input (see the module docstring)."""

    def __init__(
        self,
        *,
        device_id: str,
        url: str,
        unit: int = 1,
        input: int = 0,  # noqa: A002 - the setting's name
        on_level: LevelListener,
        poll_interval_s: float = 0.1,
        command_timeout_s: float = 0.25,
        connect_timeout_s: float = 1.0,
        backoff: Backoff | None = None,
        on_state: StateListener | None = None,
    ) -> None:
        try:
            endpoint = parse_endpoint(url)
        except TurnstileConfigError as exc:
            raise DeviceConfigError(str(exc), device_id=device_id) from exc
        if poll_interval_s <= 0 or command_timeout_s <= 0 or connect_timeout_s <= 0:
            raise DeviceConfigError("intervals and timeouts must be > 0", device_id=device_id)
        self.device_id = device_id
        self.query = ReadDiscreteInputs(unit=unit, address=input)
        self.poll_interval_s = poll_interval_s
        self.command_timeout_s = command_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.status = DeviceStatus(device_id, on_change=on_state)
        self.level: bool | None = None  # the last level read (None: never read, or down)
        self._on_level = on_level
        self._backoff = backoff or reconnect_backoff()
        self._lost = asyncio.Event()
        self._link = ModbusClientLink(endpoint, device_id=device_id, on_lost=self._mark_lost)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def state(self) -> DeviceState:
        return self.status.state

    async def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"alarm:{self.device_id}")

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        await stop_task(task)
        self._link.close()

    def _mark_lost(self, reason: str) -> None:
        del reason
        self._lost.set()

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._link.connect(timeout_s=self.connect_timeout_s)
                self._lost.clear()
                await self._poll()
            except DeviceProtocolError as exc:
                self._down(DeviceState.ERROR, str(exc))
            except DriverError as exc:
                self._down(DeviceState.DISCONNECTED, str(exc))
            await asyncio.sleep(self._backoff.next_delay())

    async def _poll(self) -> None:
        first = True
        while not self._closed:
            if self._lost.is_set():
                raise _Lost("connection lost", device_id=self.device_id)
            answer = await self._link.execute(self.query, timeout_s=self.command_timeout_s)
            level = bool(answer[0]) if answer else False
            if first:
                first = False
                self._backoff.reset()
                self.status.set(DeviceState.CONNECTED)
            self.level = level
            self._on_level(level, time.monotonic())
            await asyncio.sleep(self.poll_interval_s)

    def _down(self, state: DeviceState, detail: str) -> None:
        self._link.close()
        self.level = None
        self.status.set(state, detail)


class _Lost(DriverError):
    """The link dropped between two polls."""
