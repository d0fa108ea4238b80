"""A fire drill on a simulated site, for the demo (issue 13, item 5): a gateway over the
simulators (pty scanners, Modbus turnstiles, a Modbus alarm panel), no hub.

    summary = await fire_drill(Path("/tmp/drill"), out=print)

A few people enter; the alarm panel's input is set; the exits are held open (the time it took
is measured on the turnstile simulators' coils); the muster list is printed as the gateway
serves it; the input clears (the emergency stays); an explicit command ends it. Returns what
happened (times, counts, the muster list) for the caller to show or check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suishen.commands.gateway_emergency import muster_lines
from suishen.demo.config_sims import visitor
from suishen.demo.simsite import LaneSpec, SimSite
from suishen.drivers.sim.alarm_panel import AlarmPanelSimulator
from suishen.gateway.config import load_config
from suishen.gateway.emergency import EmergencySource
from suishen.gateway.records import Direction
from suishen.gateway.service import GatewayService

ALARM_INPUT = 0
LANES = [
    LaneSpec(id="lobby-in", zone="lobby"),
    LaneSpec(id="lobby-out", direction=Direction.OUT, zone="lobby"),
    LaneSpec(id="tower-in", zone="tower"),
    LaneSpec(id="tower-out", direction=Direction.OUT, zone="tower"),
]


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> float:
    start = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls simulator state
            await asyncio.sleep(0.005)
    return time.monotonic() - start


async def fire_drill(
    root: Path, *, people: int = 5, out: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the drill under ``root`` (a fresh directory); see the module docstring."""
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    async with AlarmPanelSimulator() as panel:
        extra = (
            f'\n[emergency]\nalarm = {{ kind = "modbus", url = "{panel.url}", '
            f"input = {ALARM_INPUT} }}\npoll_interval_s = 0.05\nalarm_debounce_ms = 100\n"
        )
        site = await SimSite.create(root, lanes=LANES, extra_toml=extra)
        try:
            service = GatewayService(load_config(site.config_path), environ=site.environ)
            task = asyncio.create_task(service.run())
            try:
                await asyncio.wait_for(service.wait_ready(), 5.0)
                return await _drill(site, service, panel, people, out)
            finally:
                service.stop()
                await asyncio.wait_for(task, 5.0)
        finally:
            await site.aclose()


async def _drill(
    site: SimSite,
    service: GatewayService,
    panel: AlarmPanelSimulator,
    people: int,
    out: Callable[[str], None],
) -> dict[str, Any]:
    emergency = service.emergency
    await _until(lambda: (emergency.alarm_status() or {}).get("state") == "connected")
    entries = ("lobby-in", "tower-in")
    for n in range(people):
        await site.scan(entries[n % 2], site.code(visitor(n), iat=int(time.time())))
        await _until(lambda: service.state.count() > n)  # noqa: B023 - awaited at once
    out(f"{people} people entered; the fire alarm goes off")

    def exits_held() -> bool:
        return all(
            lane.turnstile is not None and lane.turnstile.relay_on
            for lane in site.lanes.values()
            if lane.spec.direction is Direction.OUT
        )

    panel.set_input(ALARM_INPUT, True)
    took = await _until(exits_held)
    out(f"exits held open {took * 1000:.0f} ms after the alarm input was set")
    muster = emergency.muster()
    for line in muster_lines(muster):
        out(line)
    panel.set_input(ALARM_INPUT, False)
    await asyncio.sleep(0.3)
    still = emergency.active
    out(f"alarm input cleared; emergency still active: {still}")
    await emergency.end(source=EmergencySource.LOCAL, actor="demo", note="drill over")
    out("emergency ended by command; gates back to normal")
    return {
        "exits_held_after_s": took,
        "still_active_after_clear": still,
        "muster": muster,
        "active_at_end": emergency.active,
    }
