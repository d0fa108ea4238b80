"""Site policy: what each alert says and where it goes, and the rule details the tables in
test_policy.py do not pin (per-kind defaults, the party window, settings checks, rejections
of unknown formats)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from suishen.gateway.policy import LaneInfo, RuleMode, SiteRules, Subject, decide
from suishen.gateway.records import (
    AlertKind,
    AlertRaised,
    AlertRoute,
    Decision,
    Direction,
    ScanFormat,
    SiteKind,
    Verdict,
    WatchLevel,
)
from suishen.gateway.state import SiteState
from suishen.protocol.codes import Rejection
from suishen.protocol.reasons import Reason
from tests.conftest import NOW
from tests.unit.test_policy import ALICE, LISTS, SITE, WATCH_DENY, WATCH_NOTIFY, key, scan

DESK = LaneInfo(site_id=SITE, kind=SiteKind.HOTEL, lane_id="D1", direction=Direction.CHECKIN)


def subject(**fields: Any) -> Subject:
    base: dict[str, Any] = {
        "format": ScanFormat.SSC1,
        "person_key": ALICE,
        "nationality": "CHN",
        "minor": False,
        "status": "G",
    }
    return Subject(**(base | fields))


def lane(kind: SiteKind, direction: Direction, lane_id: str = "L7") -> LaneInfo:
    return LaneInfo(site_id=SITE, kind=kind, lane_id=lane_id, direction=direction)


def run(
    item: Subject | Rejection,
    where: LaneInfo,
    rules: SiteRules | None = None,
    state: SiteState | None = None,
    now: float = NOW,
) -> Decision:
    return decide(
        item,
        lane=where,
        rules=rules or SiteRules(),
        state=state or SiteState(site_id=SITE, kind=where.kind),
        lists=LISTS,
        now=now,
    )


def no_clear_identity(alert: AlertRaised) -> None:
    """An alert's detail is short and never carries the person key (nor any name)."""
    assert len(alert.detail) <= 120
    assert ALICE not in alert.detail and WATCH_DENY not in alert.detail


# --------------------------------------------------------------------------- alert contents


@pytest.mark.parametrize("direction", [Direction.IN, Direction.OUT])
def test_watchlist_alert_names_the_entry_lane_and_direction(direction):
    """A watchlist hit, at an entry or an exit, alerts with the entry's route and level, the
    person's key, and a detail saying level, the hub's reason category, lane and direction."""
    (alert,) = run(subject(person_key=WATCH_DENY), lane(SiteKind.BUILDING, direction)).alerts
    assert (alert.kind, alert.route, alert.level) == (
        AlertKind.WATCHLIST,
        AlertRoute.POLICE,
        WatchLevel.DENY,
    )
    assert alert.person_key == WATCH_DENY
    assert alert.detail == f"watchlist deny (wanted) at L7 {direction}"
    no_clear_identity(alert)


def test_watchlist_notify_alert_on_exit_keeps_its_route_and_key():
    """A notify-level hit at an exit is a silent alert to the entry's handler (staff)."""
    decision = run(subject(person_key=WATCH_NOTIFY), lane(SiteKind.VENUE, Direction.OUT))
    (alert,) = decision.alerts
    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, None)
    assert (alert.route, alert.level, alert.person_key) == (
        AlertRoute.STAFF,
        WatchLevel.NOTIFY,
        WATCH_NOTIFY,
    )
    assert alert.detail == "watchlist notify (vip) at L7 out"


@pytest.mark.parametrize("route", list(AlertRoute))
def test_unaccompanied_minor_alert_goes_to_the_configured_route(route):
    """An unaccompanied minor's check-in alerts minor_route (police by default) about that
    guest, naming the stay the minor joined so the desk can find the party."""
    decision = run(subject(minor=True), DESK, SiteRules(minor_route=route))
    (alert,) = decision.alerts
    assert alert.kind is AlertKind.MINOR_UNACCOMPANIED
    assert (alert.route, alert.person_key, alert.level) == (route, ALICE, None)
    assert decision.stay_id is not None
    assert alert.detail == f"minor checking in without an adult in stay {decision.stay_id}"
    no_clear_identity(alert)
    assert SiteRules().minor_route is AlertRoute.POLICE


@pytest.mark.parametrize("route", list(AlertRoute))
def test_foreign_guest_alert_goes_to_the_configured_route(route):
    """A foreign guest's check-in alerts foreign_guest_route (police by default) about that
    guest, with the nationality and the stay for the 24-hour registration report."""
    decision = run(subject(nationality="UTO"), DESK, SiteRules(foreign_guest_route=route))
    (alert,) = decision.alerts
    assert alert.kind is AlertKind.FOREIGN_GUEST
    assert (alert.route, alert.person_key, alert.level) == (route, ALICE, None)
    assert alert.detail == f"foreign guest (UTO) checked in, stay {decision.stay_id}"
    no_clear_identity(alert)
    assert SiteRules().foreign_guest_route is AlertRoute.POLICE


@pytest.mark.parametrize("route", list(AlertRoute))
def test_capacity_alert_goes_to_the_configured_route(route):
    """Reaching the soft capacity alerts capacity_route (staff by default) with no person
    attached, naming the threshold, the site and the lane."""
    state = SiteState(site_id=SITE, kind=SiteKind.VENUE)
    state.apply(scan(Direction.IN, key("other"), lane="L1", ts=NOW - 30))
    rules = SiteRules(capacity_soft=2, capacity_route=route)
    (alert,) = run(subject(), lane(SiteKind.VENUE, Direction.IN), rules, state).alerts
    assert alert.kind is AlertKind.CAPACITY
    assert (alert.route, alert.person_key, alert.level) == (route, None, None)
    assert alert.detail == f"soft capacity 2 reached at {SITE} (lane L7)"
    assert SiteRules().capacity_route is AlertRoute.STAFF


# --------------------------------------------------------------------------- rule details


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        (SiteKind.HOTEL, RuleMode.FLAG),
        (SiteKind.BUILDING, RuleMode.OFF),
        (SiteKind.VENUE, RuleMode.OFF),
        (SiteKind.CONSTRUCTION, RuleMode.OFF),
    ],
)
def test_minor_rule_defaults_by_site_kind(kind, mode):
    """minor_unaccompanied left unset is flag at hotels and off elsewhere, so a check-in
    desk at another kind of site raises no minor alert; a set mode applies everywhere."""
    assert SiteRules().minor_mode(kind) is mode
    assert SiteRules(minor_unaccompanied=RuleMode.DENY).minor_mode(kind) is RuleMode.DENY
    decision = run(subject(minor=True), lane(kind, Direction.CHECKIN, "D1"))
    flagged = AlertKind.MINOR_UNACCOMPANIED in {a.kind for a in decision.alerts}
    assert flagged is (mode is RuleMode.FLAG)


def test_party_window_setting_decides_whether_a_minor_joins_the_adult():
    """stay_party_window_s decides whether a minor checking in after an adult at the same
    desk (no room given) joins the adult's stay: 60 s later joins a 120 s window, not a
    30 s one; 300 s later joins only a window of at least 300 s."""
    state = SiteState(site_id=SITE, kind=SiteKind.HOTEL)
    state.apply(scan(Direction.CHECKIN, key("parent"), lane="D1", ts=NOW, stay_id="D1@p"))
    minor = subject(minor=True)
    cases = [(60, 120, "D1@p"), (60, 30, None), (300, 300, "D1@p"), (300, 299, None)]
    for later, window, joined in cases:
        rules = SiteRules(stay_party_window_s=window)
        decision = run(minor, DESK, rules, state, now=NOW + later)
        assert (decision.stay_id == "D1@p") is (joined is not None), (later, window)
        expected = None if joined else Reason.MINOR_UNACCOMPANIED
        assert decision.reason is expected, (later, window)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"capacity_hard": 0}, "capacity_hard"),
        ({"capacity_soft": 0}, "capacity_soft"),
        ({"capacity_hard": 2, "capacity_soft": 3}, "capacity_soft"),
        ({"replay_ttl_s": 0}, "replay_ttl_s"),
        ({"stay_party_window_s": -1}, "stay_party_window_s"),
    ],
)
def test_rules_refuse_bad_settings_naming_the_setting(settings, name):
    """Each settings check raises "<setting>: <problem>", the form the config loader maps to
    the setting's path (site.rules.<setting>) in its problem list."""
    assert name in {f.name for f in dataclasses.fields(SiteRules)}
    with pytest.raises(ValueError, match=rf"^{name}: \S"):
        SiteRules(**settings)


def test_rules_accept_the_boundary_values():
    """The smallest allowed values are accepted: capacities of 1 (soft equal to hard), a
    replay memory of 1 s and a party window of 0 s."""
    rules = SiteRules(capacity_hard=1, capacity_soft=1, replay_ttl_s=1, stay_party_window_s=0)
    assert (rules.capacity_hard, rules.capacity_soft) == (1, 1)
    assert (rules.replay_ttl_s, rules.stay_party_window_s) == (1, 0)


@pytest.mark.parametrize("fmt", [None, "XYZ", "ssc1"])
def test_rejection_of_unknown_format_keeps_its_verification_reason(fmt):
    """A rejected scan whose format the gateway cannot name is denied with the verifier's
    reason: the format rule only applies to a format it knows."""
    rejection = Rejection(reason=Reason.MALFORMED_PREFIX, detail="", format=fmt)
    decision = run(rejection, lane(SiteKind.BUILDING, Direction.IN))
    assert (decision.verdict, decision.reason) == (Verdict.DENY, Reason.MALFORMED_PREFIX)
