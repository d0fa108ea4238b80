"""A fire-alarm input on a UHPPOTE controller: one bit of its status reply, polled.

The controller's get-status reply carries an ``inputs`` byte (offset 50; uhppoted's
GetStatusResponse.inputs). uhppoted decodes bit 0 as the fire-alarm input (the controller's
fire-alarm terminal) and bit 1 as "lock forced" (uhppoted-python ``get_status``: ``fire =
inputs & 0x01``, ``lock_forced = inputs & 0x02``; uhppoted-lib-go decodes it the same way).

``UhppoteAlarmInput(link, bit=0, on_level=..., poll_interval_s=0.1)`` shares the controller's
UhppoteLink with the lanes' doors and readers (the link is counted: it runs while any user is
started), sends get-status every ``poll_interval_s`` and hands each level with its monotonic
time to ``on_level`` (the gateway debounces it, exactly as a Modbus input's:
protocol.emergency.AlarmDebounce). Its state mirrors the link's (DeviceStatus under its own
device_id: "device down" once, "back" once). A failed read reports no level and sets
``level`` to None (a missing input says nothing about the fire); reads go on with backoff,
and a read that succeeds while the link is down wakes the link's heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from suishen.drivers.alarm_input import LevelListener
from suishen.drivers.base import DeviceConfigError, DriverError, StateListener, reconnect_backoff
from suishen.drivers.uhppote import UhppoteLink, _LinkUser
from suishen.protocol.backoff import Backoff
from suishen.protocol.device_state import DeviceState

log = structlog.get_logger("suishen.drivers.uhppote_alarm")

FIRE_ALARM_BIT = 0  # uhppoted: inputs & 0x01 is the fire alarm, 0x02 "lock forced"


class UhppoteAlarmInput(_LinkUser):
    """One bit of a UHPPOTE controller's status ``inputs`` byte (see the module docstring)."""

    def __init__(
        self,
        link: UhppoteLink,
        *,
        device_id: str,
        bit: int = FIRE_ALARM_BIT,
        on_level: LevelListener,
        poll_interval_s: float = 0.1,
        backoff: Backoff | None = None,
        on_state: StateListener | None = None,
    ) -> None:
        super().__init__(link, device_id, on_state)
        if not 0 <= bit <= 7:
            raise DeviceConfigError(f"input bit {bit} not in 0..7", device_id=device_id)
        if poll_interval_s <= 0:
            raise DeviceConfigError("poll_interval_s must be > 0", device_id=device_id)
        self.bit = bit
        self.poll_interval_s = poll_interval_s
        self.level: bool | None = None  # the last level read (None: never read, or failing)
        self._on_level = on_level
        self._backoff = backoff or reconnect_backoff(initial_s=poll_interval_s)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        if self._closed or self._task is not None:
            return
        await self._start_link()
        self._task = asyncio.create_task(self._poll(), name=f"alarm:{self.device_id}")

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_link()

    async def _poll(self) -> None:
        while not self._closed:
            try:
                status = await self.link.get_status()
            except DriverError as exc:
                self.level = None
                log.debug("alarm input read failed", device_id=self.device_id, error=str(exc))
                await asyncio.sleep(max(self.poll_interval_s, self._backoff.next_delay()))
                continue
            self._backoff.reset()
            if self.link.state is not DeviceState.CONNECTED:
                self.link.wake()  # it answers again: the heartbeat sets it up and reports it
            level = bool(int(status.inputs) >> self.bit & 1)
            self.level = level
            self._on_level(level, time.monotonic())
            await asyncio.sleep(self.poll_interval_s)
