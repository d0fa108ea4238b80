"""ScanPipeline.today (the local date a scan's minor check uses) is kept for the day it was
computed for, and is still exactly the zone's date for every moment: around midnight, and on
days when a daylight-saving change moves midnight or makes the day 23 or 25 hours long."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from suishen.gateway.lists import Lists
from suishen.gateway.pipeline import ScanPipeline
from suishen.gateway.policy import LaneInfo, SiteRules
from suishen.gateway.records import Direction, SiteKind
from suishen.gateway.state import SiteState
from suishen.protocol.codes import VerifyOptions
from suishen.protocol.trust import TrustList


def pipeline(zone: str) -> ScanPipeline:
    lane = LaneInfo(site_id="s", kind=SiteKind.BUILDING, lane_id="in-1", direction=Direction.IN)
    return ScanPipeline(
        lane=lane,
        rules=SiteRules(),
        state=SiteState(site_id="s", kind=SiteKind.BUILDING),
        lists=Lists(trust=TrustList()),
        pepper=bytes(32),
        verify_options=VerifyOptions(),
        timezone=zone,
    )


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Asia/Shanghai", dt.date(2026, 12, 31)),
        ("Europe/Berlin", dt.date(2026, 3, 29)),  # 23 hours
        ("Europe/Berlin", dt.date(2026, 10, 25)),  # 25 hours
        ("America/Santiago", dt.date(2026, 9, 6)),  # the clocks jump at midnight
        ("America/Havana", dt.date(2026, 11, 1)),  # midnight happens twice
    ],
)
def test_today_is_the_zones_date_at_every_moment(zone: str, day: dt.date) -> None:
    """Moments every 7 minutes from the day before to the day after, forwards then backwards
    (the cached day is left in either direction): today() is the zone's own date each time."""
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tz).timestamp()
    moments = [start + k * 420.0 for k in range(3 * 24 * 60 // 7)]
    moments += [start + 1.0 - 0.5, *(m - 0.001 for m in reversed(moments))]
    p = pipeline(zone)
    for now in moments:
        assert p.today(now) == dt.datetime.fromtimestamp(now, tz).date(), now
