"""A lane closed by its time profile, end to end (issue 13, item 1): a real gateway over the
simulators (pty scanner, Modbus turnstile). The profile "closed" admits at no time, so the scan
is denied with outside_hours and the gate stays shut whatever the clock says; the exit lane,
with the same profile, still lets people out; a lane without a profile opens."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from suishen.demo.simsite import LaneSpec
from suishen.gateway.records import Direction
from tests.integration.gateway_fixtures import cnid, ric, running_gateway

LANES = [
    LaneSpec(id="in-1"),
    LaneSpec(id="in-2"),
    LaneSpec(id="out-1", direction=Direction.OUT),
]
PROFILES = '\n[time_profiles.closed]\nworkday = "mon"\n'


def close_lanes(text: str) -> str:
    for lane_id in ("in-1", "out-1"):
        text = text.replace(
            f'id = "{lane_id}"\n', f'id = "{lane_id}"\ntime_profile = "closed"\n', 1
        )
    return text + PROFILES


async def test_a_lane_closed_by_its_profile(tmp_path: Path) -> None:
    """in-1 (closed): outside_hours, no open command; in-2 (no profile): opens; out-1
    (closed, but an exit): lets the person out."""
    person = ric(cnid(dt.date(1985, 5, 5)), dob="1985-05-05")
    async with running_gateway(tmp_path, lanes=LANES, edit_config=close_lanes) as gw:
        turnstile = gw.site.lanes["in-1"].turnstile
        assert turnstile is not None
        refused = await gw.scan("in-1", gw.code(person))
        assert (refused.verdict, refused.reason) == ("deny", "outside_hours")
        assert turnstile.opens_received == 0
        entered = await gw.scan("in-2", gw.code(person))
        assert (entered.verdict, entered.reason) == ("allow", None)
        left = await gw.scan("out-1", gw.code(person))
        assert (left.verdict, left.reason) == ("allow", None)
