"""Site policy over generated inputs: it never raises, is pure, and keeps its promises."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from suishen.gateway.lists import Lists, Roster, RosterEntry, WatchEntry, Watchlist
from suishen.gateway.policy import LaneInfo, RuleMode, SiteRules, Subject, decide
from suishen.gateway.records import (
    AlertRoute,
    Decision,
    Direction,
    Person,
    ScanDecided,
    ScanFormat,
    SiteKind,
    Verdict,
    WatchLevel,
)
from suishen.gateway.state import SiteState
from suishen.protocol.codes import Rejection
from suishen.protocol.reasons import VERIFICATION_REASONS, Reason

NOW = 1_790_000_000
KEYS = [hashlib.sha256(bytes([i])).hexdigest() for i in range(6)]
CTIS = [bytes([i]).hex() * 16 for i in range(3)]

LISTS = Lists(
    watchlist=Watchlist.from_entries(
        [
            (KEYS[0], WatchEntry(level=WatchLevel.DENY, route=AlertRoute.POLICE, reason="w")),
            (KEYS[1], WatchEntry(level=WatchLevel.NOTIFY, route=AlertRoute.STAFF, reason="n")),
        ]
    ),
    roster=Roster([(k, RosterEntry(site_id="s1")) for k in KEYS[1:4]]),
)

modes = st.sampled_from(list(RuleMode))
optional_modes = st.none() | modes
capacity = st.none() | st.integers(min_value=1, max_value=4)


@st.composite
def site_rules(draw: st.DrawFn) -> SiteRules:
    hard, soft = draw(capacity), draw(capacity)
    if hard is not None and soft is not None and soft > hard:
        soft = hard
    return SiteRules(
        formats=draw(st.none() | st.frozensets(st.sampled_from(list(ScanFormat)))),
        watchlist=draw(st.booleans()),
        watchlist_on_exit=draw(st.booleans()),
        replay=draw(modes),
        status_red=draw(modes),
        status_yellow=draw(modes),
        registration=draw(optional_modes),
        anti_passback=draw(modes),
        capacity_hard=hard,
        capacity_soft=soft,
        minor_unaccompanied=draw(optional_modes),
        foreign_guest_report=draw(st.none() | st.booleans()),
        stay_party_window_s=draw(st.integers(min_value=0, max_value=300)),
    )


subjects = st.builds(
    Subject,
    format=st.sampled_from(list(ScanFormat)),
    person_key=st.none() | st.sampled_from(KEYS),
    nationality=st.none() | st.sampled_from(["CHN", "UTO", "DEU"]),
    minor=st.none() | st.booleans(),
    status=st.none() | st.sampled_from(["G", "Y", "R"]),
    cti=st.none() | st.sampled_from(CTIS),
    exp=st.none() | st.integers(min_value=NOW - 500, max_value=NOW + 500),
    room=st.none() | st.sampled_from(["101", "102"]),
)
rejections = st.builds(
    Rejection,
    reason=st.sampled_from(sorted(VERIFICATION_REASONS)),
    detail=st.just(""),
    format=st.none() | st.sampled_from(["SSC1", "HC1", "XYZ"]),
)
history = st.lists(
    st.tuples(
        st.sampled_from(list(Direction)),
        st.sampled_from(KEYS),
        st.sampled_from(["L1", "L2", "D1"]),
        st.none() | st.sampled_from(CTIS),
        st.none() | st.booleans(),
        st.integers(min_value=-600, max_value=0),
    ),
    max_size=12,
)


def build_state(kind: SiteKind, events: list[Any]) -> SiteState:
    state = SiteState(site_id="s1", kind=kind)
    for direction, key, lane, cti, minor, dt in sorted(events, key=lambda e: e[5]):
        person = Person(
            person_key=key,
            nationality="CHN",
            minor=minor,
            status="G",
            masked_name="*",
            masked_number="*",
        )
        state.apply(
            ScanDecided(
                ts=NOW + dt,
                site_id="s1",
                lane_id=lane,
                direction=direction,
                format=ScanFormat.SSC1,
                decision=Decision(verdict=Verdict.ALLOW, reason=None),
                person=person,
                cti=cti,
            )
        )
    return state


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(list(SiteKind)),
    direction=st.sampled_from(list(Direction)),
    zone=st.sampled_from(["main", "vip"]),
    item=subjects | rejections,
    rules=site_rules(),
    events=history,
    offset=st.floats(min_value=-1000, max_value=1000, allow_nan=False),
)
def test_decide_never_raises_and_keeps_its_promises(
    *, kind, direction, zone, item, rules, events, offset
):
    """For any scan, rules and state: a Decision; a denial has a reason; exits deny only for
    format or verification; decide is deterministic and leaves the state untouched."""
    state = build_state(kind, events)
    before = state.snapshot()
    lane = LaneInfo(site_id="s1", kind=kind, lane_id="L1", direction=direction, zone=zone)
    now = NOW + offset
    decision = decide(item, lane=lane, rules=rules, state=state, lists=LISTS, now=now)
    again = decide(item, lane=lane, rules=rules, state=state, lists=LISTS, now=now)
    assert decision == again
    assert state.snapshot() == before
    if decision.verdict is Verdict.DENY:
        assert decision.reason is not None
    if direction in (Direction.OUT, Direction.CHECKOUT) and decision.verdict is Verdict.DENY:
        assert decision.reason is Reason.FORMAT_NOT_ACCEPTED or (
            decision.reason in VERIFICATION_REASONS
        )
        assert decision.reason is not Reason.CAPACITY_FULL
    if isinstance(item, Rejection):
        assert decision.verdict is Verdict.DENY
    if decision.stay_id is not None:
        assert direction is Direction.CHECKIN and decision.verdict is Verdict.ALLOW


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(list(SiteKind)),
    inside=st.integers(min_value=0, max_value=6),
    hard=st.integers(min_value=1, max_value=5),
)
def test_exits_never_deny_for_capacity(kind, inside, hard):
    """However full the site, a valid code at an exit is let out."""
    events = [(Direction.IN, KEYS[i % len(KEYS)], "L1", None, False, -i) for i in range(inside)]
    state = build_state(kind, events)
    lane = LaneInfo(site_id="s1", kind=kind, lane_id="L2", direction=Direction.OUT)
    item = Subject(format=ScanFormat.SSC1, person_key=KEYS[5], status="R")
    rules = SiteRules(capacity_hard=hard, formats=frozenset({ScanFormat.SSC1}))
    decision = decide(item, lane=lane, rules=rules, state=state, lists=LISTS, now=NOW)
    assert decision.verdict is Verdict.ALLOW
