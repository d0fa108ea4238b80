"""The policy's time profiles (issue 13, item 1): an entry outside the lane's profile, or outside
the registered worker's roster-group profile, is denied with outside_hours; an exit never is; a
watchlist alert is still raised. Times at the boundaries, in the site's zone (Asia/Shanghai)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from suishen.gateway.lists import RosterEntry, WatchEntry
from suishen.gateway.policy import LaneInfo, SiteRules, Subject, decide
from suishen.gateway.records import AlertRoute, Direction, ScanFormat, SiteKind, Verdict, WatchLevel
from suishen.gateway.state import SiteState
from suishen.protocol.reasons import Reason
from suishen.protocol.time_profiles import SiteHours, parse_calendar, parse_profile

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
KEY = "ab" * 32
CALENDAR = parse_calendar(
    {"version": 1, "region": "CN", "holidays": ["2026-10-01"], "workdays": ["2026-10-10"]}
)
DAYTIME = SiteHours(
    profile=parse_profile(
        "day", {d: ["06:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri")}, field="p"
    ),
    calendar=CALENDAR,
    zone=ZONE,
)


def local(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()


class Lists:
    def __init__(self, worker: RosterEntry | None = None, watch: WatchEntry | None = None) -> None:
        self._worker, self._watch = worker, watch

    def watch(self, person_key: str, now: float) -> WatchEntry | None:
        del person_key, now  # the same answer for anyone, at any time
        return self._watch

    def worker(self, person_key: str, site_id: str, now: float) -> RosterEntry | None:
        del person_key, site_id, now
        return self._worker


def subject() -> Subject:
    return Subject(format=ScanFormat.SSC1, person_key=KEY, status="G", cti="c1")


def lane(direction: Direction = Direction.IN, **kwargs: object) -> LaneInfo:
    return LaneInfo(
        site_id="s", kind=SiteKind.CONSTRUCTION, lane_id="l", direction=direction, **kwargs
    )  # type: ignore[arg-type]


def state() -> SiteState:
    return SiteState(site_id="s", kind=SiteKind.CONSTRUCTION)


@pytest.mark.parametrize(
    ("when", "verdict"),
    [
        ("2026-12-07T05:59:59", Verdict.DENY),  # Monday, a second before the window
        ("2026-12-07T06:00:00", Verdict.ALLOW),
        ("2026-12-07T19:59:59", Verdict.ALLOW),
        ("2026-12-07T20:00:00", Verdict.DENY),
        ("2026-12-06T12:00:00", Verdict.DENY),  # a Sunday
        ("2026-10-10T12:00:00", Verdict.ALLOW),  # the make-up Saturday
        ("2026-10-01T12:00:00", Verdict.DENY),  # National Day
    ],
)
def test_the_lanes_profile(when: str, verdict: Verdict) -> None:
    """A registered worker at a lane with a daytime profile: in or out of hours."""
    decision = decide(
        subject(),
        lane=lane(hours=DAYTIME),
        rules=SiteRules(),
        state=state(),
        lists=Lists(worker=RosterEntry(site_id="s")),
        now=local(when),
    )
    assert decision.verdict is verdict
    assert decision.reason == (None if verdict is Verdict.ALLOW else Reason.OUTSIDE_HOURS)


def test_the_worker_groups_profile() -> None:
    """No lane profile, but the worker's group has one: denied at night, in at noon; a worker
    of another group (no profile) is let in at night."""
    info = lane(group_hours={"sub-a": DAYTIME})
    night, noon = local("2026-12-07T23:00:00"), local("2026-12-07T12:00:00")
    member = Lists(worker=RosterEntry(site_id="s", group="sub-a"))
    other = Lists(worker=RosterEntry(site_id="s", group="staff"))
    rules, site = SiteRules(), state()
    assert (
        decide(subject(), lane=info, rules=rules, state=site, lists=member, now=night).reason
        == Reason.OUTSIDE_HOURS
    )
    assert (
        decide(subject(), lane=info, rules=rules, state=site, lists=member, now=noon).verdict
        is Verdict.ALLOW
    )
    assert (
        decide(subject(), lane=info, rules=rules, state=site, lists=other, now=night).verdict
        is Verdict.ALLOW
    )


def test_an_exit_is_never_held_by_a_profile() -> None:
    """Egress is fail-safe: at night the exit lets the worker out."""
    decision = decide(
        subject(),
        lane=lane(Direction.OUT, hours=DAYTIME),
        rules=SiteRules(),
        state=state(),
        lists=Lists(worker=RosterEntry(site_id="s")),
        now=local("2026-12-07T23:00:00"),
    )
    assert decision.verdict is Verdict.ALLOW


def test_a_watchlist_hit_out_of_hours_still_alerts() -> None:
    """Denied for the watchlist first (its reason shown), and the alert is raised."""
    watched = WatchEntry(level=WatchLevel.DENY, route=AlertRoute.POLICE, reason="wanted")
    decision = decide(
        subject(),
        lane=lane(hours=DAYTIME),
        rules=SiteRules(),
        state=state(),
        lists=Lists(worker=RosterEntry(site_id="s"), watch=watched),
        now=local("2026-12-07T23:00:00"),
    )
    assert decision.reason == Reason.WATCHLIST
    assert [a.kind for a in decision.alerts] == ["watchlist"]
