"""Site policy, table-driven: every rule and reason code per site kind, and which reason wins."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import pytest

from suishen.gateway.lists import Lists, Roster, RosterEntry, WatchEntry, Watchlist
from suishen.gateway.policy import (
    LaneInfo,
    RuleMode,
    SiteRules,
    Subject,
    decide,
    is_minor,
    subject_from_cnid,
    subject_from_code,
    subject_from_mrz,
)
from suishen.gateway.records import (
    AlertKind,
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
from suishen.protocol.codes import Rejection, VerifiedCode, verify
from suishen.protocol.identity import CnidNumber, Mrz, parse_cnid, parse_mrz
from suishen.protocol.person import person_key
from suishen.protocol.reasons import Reason
from tests.conftest import NOW

SITE = "s1"
PEPPER = b"p" * 32


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


ALICE, BOB, WATCH_DENY, WATCH_NOTIFY, STRANGER = map(
    key, ["alice", "bob", "watch-deny", "watch-notify", "stranger"]
)
EXPIRED_WORKER, OTHER_SITE = key("expired-worker"), key("other-site")
CTI = "ab" * 16

LISTS = Lists(
    watchlist=Watchlist.from_entries(
        [
            (
                WATCH_DENY,
                WatchEntry(level=WatchLevel.DENY, route=AlertRoute.POLICE, reason="wanted"),
            ),
            (
                WATCH_NOTIFY,
                WatchEntry(level=WatchLevel.NOTIFY, route=AlertRoute.STAFF, reason="vip"),
            ),
            (
                STRANGER,  # an expired entry: no longer in force
                WatchEntry(
                    level=WatchLevel.DENY,
                    route=AlertRoute.POLICE,
                    reason="old",
                    expires_at=NOW - 1,
                ),
            ),
        ]
    ),
    roster=Roster(
        [
            (pk, RosterEntry(site_id=SITE, name_mask="张*明"))
            for pk in (ALICE, BOB, WATCH_DENY, WATCH_NOTIFY)
        ]
        + [
            (EXPIRED_WORKER, RosterEntry(site_id=SITE, valid_to=NOW - 86400)),
            (OTHER_SITE, RosterEntry(site_id="elsewhere")),
        ]
    ),
)


def scan(direction: Direction, who: str, *, lane: str, ts: float, cti: str | None = None,
         minor: bool | None = False, stay_id: str | None = None) -> ScanDecided:  # fmt: skip
    return ScanDecided(
        ts=ts,
        site_id=SITE,
        lane_id=lane,
        direction=direction,
        format=ScanFormat.SSC1,
        decision=Decision(verdict=Verdict.ALLOW, reason=None, stay_id=stay_id),
        person=Person(
            person_key=who,
            nationality="CHN",
            minor=minor,
            status="G",
            masked_name="张*明",
            masked_number="310***********1234",
        ),
        cti=cti,
    )


def make_state(kind: SiteKind, setup: frozenset[str]) -> SiteState:
    """A site state with the named situations already journalled."""
    state = SiteState(site_id=SITE, kind=kind)
    t = NOW - 30
    if "inside" in setup:  # the subject is already inside zone main
        state.apply(scan(Direction.IN, ALICE, lane="L1", ts=t))
    if "replay_other" in setup:  # the code id was let in at another lane
        state.apply(scan(Direction.IN, BOB, lane="L2", ts=t, cti=CTI))
    if "replay_same" in setup:  # ... at this lane
        state.apply(scan(Direction.IN, BOB, lane="L1", ts=t, cti=CTI))
    for i in range(3 if "full" in setup else 1 if "soft" in setup else 0):
        state.apply(scan(Direction.IN, key(f"other{i}"), lane="L1", ts=t))
    if "stay_adult" in setup:  # an adult checked in at this desk a moment ago
        state.apply(
            scan(Direction.CHECKIN, BOB, lane="D1", ts=NOW - 10, stay_id="D1@x", minor=False)
        )
    if "stay_minor" in setup:  # only a minor checked in at this desk a moment ago
        state.apply(
            scan(Direction.CHECKIN, BOB, lane="D1", ts=NOW - 10, stay_id="D1@x", minor=True)
        )
    return state


def run(
    kind: SiteKind,
    direction: Direction = Direction.IN,
    *,
    subject: dict[str, Any] | None = None,
    rules: dict[str, Any] | None = None,
    setup: frozenset[str] = frozenset(),
    rejection: Reason | None = None,
) -> Decision:
    fields: dict[str, Any] = {
        "format": ScanFormat.SSC1,
        "person_key": ALICE,
        "nationality": "CHN",
        "minor": False,
        "status": "G",
        "cti": CTI,
        "exp": NOW + 100,
    }
    fields.update(subject or {})
    item: Subject | Rejection = Subject(**fields)
    if rejection is not None:
        item = Rejection(reason=rejection, detail="", format="SSC1")
    lane_id = "D1" if direction in (Direction.CHECKIN, Direction.CHECKOUT) else "L1"
    return decide(
        item,
        lane=LaneInfo(site_id=SITE, kind=kind, lane_id=lane_id, direction=direction),
        rules=SiteRules(**(rules or {})),
        state=make_state(kind, setup),
        lists=LISTS,
        now=NOW,
    )


ALL_KINDS = list(SiteKind)
ENTRY = Direction.IN


# (id, subject, rules, setup, verdict, reason, alert kinds) — for every site kind
COMMON = [
    ("plain", {}, {}, set(), Verdict.ALLOW, None, ()),
    ("format_not_accepted", {"format": ScanFormat.HC1, "person_key": None}, {}, set(),
     Verdict.DENY, Reason.FORMAT_NOT_ACCEPTED, ()),
    ("format_listed", {"format": ScanFormat.HC1, "person_key": None, "cti": None},
     {"formats": frozenset({ScanFormat.HC1}), "registration": RuleMode.OFF}, set(),
     Verdict.ALLOW, None, ()),
    ("replay", {}, {}, {"replay_other"}, Verdict.DENY, Reason.REPLAY, ()),
    ("replay_same_lane", {}, {}, {"replay_same"}, Verdict.ALLOW, None, ()),
    ("replay_flag", {}, {"replay": RuleMode.FLAG}, {"replay_other"},
     Verdict.ALLOW, Reason.REPLAY, ()),
    ("replay_off", {}, {"replay": RuleMode.OFF}, {"replay_other"}, Verdict.ALLOW, None, ()),
    ("status_red", {"status": "R"}, {}, set(), Verdict.DENY, Reason.STATUS_RED, ()),
    ("status_red_off", {"status": "R"}, {"status_red": RuleMode.OFF}, set(),
     Verdict.ALLOW, None, ()),
    ("status_yellow", {"status": "Y"}, {}, set(), Verdict.DENY, Reason.STATUS_YELLOW, ()),
    ("status_yellow_flag", {"status": "Y"}, {"status_yellow": RuleMode.FLAG}, set(),
     Verdict.ALLOW, Reason.STATUS_YELLOW, ()),
    ("status_yellow_allowed", {"status": "Y"}, {"status_yellow": RuleMode.OFF}, set(),
     Verdict.ALLOW, None, ()),
    ("watchlist_deny", {"person_key": WATCH_DENY}, {}, set(),
     Verdict.DENY, Reason.WATCHLIST, (AlertKind.WATCHLIST,)),
    ("watchlist_notify", {"person_key": WATCH_NOTIFY}, {}, set(),
     Verdict.ALLOW, None, (AlertKind.WATCHLIST,)),
    ("watchlist_off", {"person_key": WATCH_DENY}, {"watchlist": False}, set(),
     Verdict.ALLOW, None, ()),
    ("anti_passback_flag", {}, {}, {"inside"}, Verdict.ALLOW, Reason.ANTI_PASSBACK, ()),
    ("anti_passback_deny", {}, {"anti_passback": RuleMode.DENY}, {"inside"},
     Verdict.DENY, Reason.ANTI_PASSBACK, ()),
    ("anti_passback_off", {}, {"anti_passback": RuleMode.OFF}, {"inside"},
     Verdict.ALLOW, None, ()),
    ("capacity_full", {}, {"capacity_hard": 3}, {"full"}, Verdict.DENY, Reason.CAPACITY_FULL, ()),
    ("capacity_room", {}, {"capacity_hard": 4}, {"full"}, Verdict.ALLOW, None, ()),
    ("capacity_inside_not_counted", {}, {"capacity_hard": 1, "anti_passback": RuleMode.OFF},
     {"inside"}, Verdict.ALLOW, None, ()),
    ("capacity_soft", {}, {"capacity_soft": 2}, {"soft"},
     Verdict.ALLOW, None, (AlertKind.CAPACITY,)),
    ("capacity_soft_below", {}, {"capacity_soft": 3}, {"soft"}, Verdict.ALLOW, None, ()),
    ("registration_on", {"person_key": STRANGER}, {"registration": RuleMode.DENY}, set(),
     Verdict.DENY, Reason.NOT_REGISTERED, ()),
    ("registration_flag", {"person_key": STRANGER}, {"registration": RuleMode.FLAG}, set(),
     Verdict.ALLOW, Reason.NOT_REGISTERED, ()),
]  # fmt: skip


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("row", [pytest.param(row, id=row[0]) for row in COMMON])
def test_common_rules_on_every_site_kind(kind, row):
    """Each common rule gives its verdict, reason and alerts at an entry lane of every kind."""
    _, subject, rules, setup, verdict, reason, alerts = row
    decision = run(kind, ENTRY, subject=subject, rules=rules, setup=frozenset(setup))
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert tuple(a.kind for a in decision.alerts) == alerts


def test_watchlist_alert_carries_route_level_and_key():
    """A watchlist hit alerts with the entry's route and level, keyed by person, no clear text."""
    (alert,) = run(SiteKind.BUILDING, subject={"person_key": WATCH_DENY}).alerts
    assert (alert.route, alert.level, alert.person_key) == (
        AlertRoute.POLICE,
        WatchLevel.DENY,
        WATCH_DENY,
    )
    (notify,) = run(SiteKind.VENUE, subject={"person_key": WATCH_NOTIFY}).alerts
    assert (notify.route, notify.level) == (AlertRoute.STAFF, WatchLevel.NOTIFY)


# Site-kind specific rules: (id, kind, direction, subject, rules, setup, verdict, reason, alerts)
SPECIFIC = [
    ("construction_registered", SiteKind.CONSTRUCTION, ENTRY, {}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("construction_not_registered", SiteKind.CONSTRUCTION, ENTRY, {"person_key": STRANGER},
     {}, set(), Verdict.DENY, Reason.NOT_REGISTERED, ()),
    ("construction_registration_expired", SiteKind.CONSTRUCTION, ENTRY,
     {"person_key": EXPIRED_WORKER}, {}, set(), Verdict.DENY, Reason.NOT_REGISTERED, ()),
    ("construction_other_site", SiteKind.CONSTRUCTION, ENTRY, {"person_key": OTHER_SITE},
     {}, set(), Verdict.DENY, Reason.NOT_REGISTERED, ()),
    ("construction_unknown_card", SiteKind.CONSTRUCTION, ENTRY,
     {"format": ScanFormat.CARD, "person_key": None, "cti": None, "status": None}, {}, set(),
     Verdict.DENY, Reason.NOT_REGISTERED, ()),
    ("construction_card", SiteKind.CONSTRUCTION, ENTRY,
     {"format": ScanFormat.CARD, "cti": None, "status": None}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("construction_registration_off", SiteKind.CONSTRUCTION, ENTRY, {"person_key": STRANGER},
     {"registration": RuleMode.OFF}, set(), Verdict.ALLOW, None, ()),
    ("building_no_registration", SiteKind.BUILDING, ENTRY, {"person_key": STRANGER}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("building_card_not_accepted", SiteKind.BUILDING, ENTRY,
     {"format": ScanFormat.CARD}, {}, set(), Verdict.DENY, Reason.FORMAT_NOT_ACCEPTED, ()),
    ("hotel_mrz_accepted", SiteKind.HOTEL, Direction.CHECKIN,
     {"format": ScanFormat.MRZ, "cti": None, "status": None}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("venue_mrz_not_accepted", SiteKind.VENUE, ENTRY, {"format": ScanFormat.MRZ}, {}, set(),
     Verdict.DENY, Reason.FORMAT_NOT_ACCEPTED, ()),
    ("hotel_checkin", SiteKind.HOTEL, Direction.CHECKIN, {}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("hotel_minor_alone", SiteKind.HOTEL, Direction.CHECKIN, {"minor": True}, {}, set(),
     Verdict.ALLOW, Reason.MINOR_UNACCOMPANIED, (AlertKind.MINOR_UNACCOMPANIED,)),
    ("hotel_minor_with_minor", SiteKind.HOTEL, Direction.CHECKIN, {"minor": True}, {},
     {"stay_minor"}, Verdict.ALLOW, Reason.MINOR_UNACCOMPANIED,
     (AlertKind.MINOR_UNACCOMPANIED,)),
    ("hotel_minor_with_guardian", SiteKind.HOTEL, Direction.CHECKIN, {"minor": True}, {},
     {"stay_adult"}, Verdict.ALLOW, None, ()),
    ("hotel_minor_deny", SiteKind.HOTEL, Direction.CHECKIN, {"minor": True},
     {"minor_unaccompanied": RuleMode.DENY}, set(), Verdict.DENY, Reason.MINOR_UNACCOMPANIED,
     (AlertKind.MINOR_UNACCOMPANIED,)),
    ("hotel_minor_off", SiteKind.HOTEL, Direction.CHECKIN, {"minor": True},
     {"minor_unaccompanied": RuleMode.OFF}, set(), Verdict.ALLOW, None, ()),
    ("building_minor_not_checked", SiteKind.BUILDING, ENTRY, {"minor": True}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("hotel_foreign_guest", SiteKind.HOTEL, Direction.CHECKIN, {"nationality": "UTO"}, {},
     set(), Verdict.ALLOW, None, (AlertKind.FOREIGN_GUEST,)),
    ("hotel_foreign_guest_off", SiteKind.HOTEL, Direction.CHECKIN, {"nationality": "UTO"},
     {"foreign_guest_report": False}, set(), Verdict.ALLOW, None, ()),
    ("hotel_foreign_denied_no_report", SiteKind.HOTEL, Direction.CHECKIN,
     {"nationality": "UTO", "status": "R"}, {}, set(), Verdict.DENY, Reason.STATUS_RED, ()),
    ("hotel_foreign_at_entrance", SiteKind.HOTEL, ENTRY, {"nationality": "UTO"}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("hotel_foreign_minor", SiteKind.HOTEL, Direction.CHECKIN,
     {"nationality": "UTO", "minor": True}, {}, set(), Verdict.ALLOW,
     Reason.MINOR_UNACCOMPANIED, (AlertKind.MINOR_UNACCOMPANIED, AlertKind.FOREIGN_GUEST)),
    ("desk_no_replay", SiteKind.HOTEL, Direction.CHECKIN, {}, {}, {"replay_other"},
     Verdict.ALLOW, None, ()),
    ("desk_no_capacity", SiteKind.HOTEL, Direction.CHECKIN, {}, {"capacity_hard": 3}, {"full"},
     Verdict.ALLOW, None, ()),
    ("desk_checkout", SiteKind.HOTEL, Direction.CHECKOUT, {"status": "R"}, {}, set(),
     Verdict.ALLOW, None, ()),
    ("venue_capacity_full", SiteKind.VENUE, ENTRY, {}, {"capacity_hard": 3}, {"full"},
     Verdict.DENY, Reason.CAPACITY_FULL, ()),
]  # fmt: skip


@pytest.mark.parametrize("row", [pytest.param(row, id=row[0]) for row in SPECIFIC])
def test_site_kind_rules(row):
    """Registration (construction), stays, minors and foreign guests (hotel), and formats."""
    _, kind, direction, subject, rules, setup, verdict, reason, alerts = row
    decision = run(kind, direction, subject=subject, rules=rules, setup=frozenset(setup))
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert tuple(a.kind for a in decision.alerts) == alerts


# Exits: (id, subject, rules, setup, verdict, reason, alerts) — entry rules do not keep people in
EXITS = [
    ("red", {"status": "R"}, {}, set(), Verdict.ALLOW, None, ()),
    ("yellow", {"status": "Y"}, {}, set(), Verdict.ALLOW, None, ()),
    ("replay", {}, {}, {"replay_other"}, Verdict.ALLOW, None, ()),
    ("full", {}, {"capacity_hard": 3}, {"full"}, Verdict.ALLOW, None, ()),
    ("not_registered", {"person_key": STRANGER}, {"registration": RuleMode.DENY}, set(),
     Verdict.ALLOW, None, ()),
    ("watchlist_deny", {"person_key": WATCH_DENY}, {}, set(), Verdict.ALLOW, Reason.WATCHLIST,
     (AlertKind.WATCHLIST,)),
    ("watchlist_notify", {"person_key": WATCH_NOTIFY}, {}, set(), Verdict.ALLOW, None,
     (AlertKind.WATCHLIST,)),
    ("watchlist_exit_off", {"person_key": WATCH_DENY}, {"watchlist_on_exit": False}, set(),
     Verdict.ALLOW, None, ()),
    ("format", {"format": ScanFormat.MRZ}, {"formats": frozenset({ScanFormat.SSC1})}, set(),
     Verdict.DENY, Reason.FORMAT_NOT_ACCEPTED, ()),
]  # fmt: skip


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("row", [pytest.param(row, id=row[0]) for row in EXITS])
def test_exits(kind, row):
    """At an exit only format and verification deny; the watchlist alerts but lets out."""
    _, subject, rules, setup, verdict, reason, alerts = row
    decision = run(kind, Direction.OUT, subject=subject, rules=rules, setup=frozenset(setup))
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert tuple(a.kind for a in decision.alerts) == alerts


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("reason", [Reason.EXPIRED, Reason.BAD_SIGNATURE, Reason.UNKNOWN_KID])
def test_verification_rejections_pass_through(kind, direction, reason):
    """A verifier's rejection denies with its own reason, in every direction and site kind."""
    decision = run(kind, direction, rejection=reason)
    assert (decision.verdict, decision.reason, decision.alerts) == (Verdict.DENY, reason, ())


def test_unacceptable_format_outranks_the_verification_reason():
    """A rejected HC1 code at a site that does not take HC1 is format_not_accepted."""
    decision = decide(
        Rejection(reason=Reason.BAD_SIGNATURE, detail="", format="HC1"),
        lane=LaneInfo(site_id=SITE, kind=SiteKind.BUILDING, lane_id="L1", direction=ENTRY),
        rules=SiteRules(),
        state=SiteState(site_id=SITE, kind=SiteKind.BUILDING),
        lists=LISTS,
        now=NOW,
    )
    assert decision.reason is Reason.FORMAT_NOT_ACCEPTED


# Precedence: (id, kind, direction, subject, rules, setup, reason, alert kinds)
DENY_ALL: dict[str, Any] = {"anti_passback": RuleMode.DENY, "capacity_hard": 3}
PRECEDENCE = [
    ("format_over_everything", SiteKind.BUILDING, ENTRY,
     {"format": ScanFormat.MRZ, "person_key": WATCH_DENY, "status": "R"}, DENY_ALL,
     {"replay_other", "full"}, Reason.FORMAT_NOT_ACCEPTED, ()),
    ("watchlist_over_replay", SiteKind.BUILDING, ENTRY, {"person_key": WATCH_DENY, "status": "R"},
     DENY_ALL, {"replay_other", "full"}, Reason.WATCHLIST, (AlertKind.WATCHLIST,)),
    ("replay_over_status", SiteKind.VENUE, ENTRY, {"status": "R"}, DENY_ALL,
     {"replay_other", "inside", "full"}, Reason.REPLAY, ()),
    ("notify_alert_kept_on_replay", SiteKind.VENUE, ENTRY, {"person_key": WATCH_NOTIFY},
     {}, {"replay_other"}, Reason.REPLAY, (AlertKind.WATCHLIST,)),
    ("red_over_registration", SiteKind.CONSTRUCTION, ENTRY,
     {"status": "R", "person_key": STRANGER}, DENY_ALL, {"full"}, Reason.STATUS_RED, ()),
    ("yellow_over_registration", SiteKind.CONSTRUCTION, ENTRY,
     {"status": "Y", "person_key": STRANGER}, DENY_ALL, {"full"}, Reason.STATUS_YELLOW, ()),
    ("registration_over_capacity", SiteKind.CONSTRUCTION, ENTRY, {"person_key": STRANGER},
     DENY_ALL, {"full"}, Reason.NOT_REGISTERED, ()),
    ("anti_passback_over_capacity", SiteKind.BUILDING, ENTRY, {},
     {"anti_passback": RuleMode.DENY, "capacity_hard": 1}, {"inside"},
     Reason.ANTI_PASSBACK, ()),
    ("deny_over_flag", SiteKind.BUILDING, ENTRY, {}, {"capacity_hard": 3},
     {"inside", "full"}, Reason.ANTI_PASSBACK, ()),
    ("capacity_deny_over_earlier_flag", SiteKind.BUILDING, ENTRY, {"status": "Y"},
     {"status_yellow": RuleMode.FLAG, "capacity_hard": 3}, {"full"}, Reason.CAPACITY_FULL, ()),
    ("first_flag_is_the_remark", SiteKind.BUILDING, ENTRY, {"status": "Y"},
     {"status_yellow": RuleMode.FLAG, "replay": RuleMode.FLAG}, {"replay_other"},
     Reason.REPLAY, ()),
    ("watchlist_over_minor", SiteKind.HOTEL, Direction.CHECKIN,
     {"person_key": WATCH_DENY, "minor": True}, {}, set(), Reason.WATCHLIST,
     (AlertKind.WATCHLIST, AlertKind.MINOR_UNACCOMPANIED)),
    ("red_over_minor", SiteKind.HOTEL, Direction.CHECKIN, {"status": "R", "minor": True},
     {"minor_unaccompanied": RuleMode.DENY}, set(), Reason.STATUS_RED,
     (AlertKind.MINOR_UNACCOMPANIED,)),
    ("soft_alert_not_raised_when_denied", SiteKind.VENUE, ENTRY, {"status": "R"},
     {"capacity_soft": 2}, {"soft"}, Reason.STATUS_RED, ()),
]  # fmt: skip


@pytest.mark.parametrize("row", [pytest.param(row, id=row[0]) for row in PRECEDENCE])
def test_precedence(row):
    """When several rules apply the documented order picks the reason; all alerts are kept."""
    _, kind, direction, subject, rules, setup, reason, alerts = row
    decision = run(kind, direction, subject=subject, rules=rules, setup=frozenset(setup))
    assert decision.reason == reason
    assert tuple(a.kind for a in decision.alerts) == alerts


def test_every_policy_reason_is_covered():
    """The tables above exercise every policy reason code of DESIGN §3."""
    seen = {row[5] for row in COMMON} | {row[7] for row in SPECIFIC} | {r[6] for r in PRECEDENCE}
    policy = {
        Reason.REPLAY,
        Reason.STATUS_RED,
        Reason.STATUS_YELLOW,
        Reason.WATCHLIST,
        Reason.NOT_REGISTERED,
        Reason.CAPACITY_FULL,
        Reason.ANTI_PASSBACK,
        Reason.MINOR_UNACCOMPANIED,
        Reason.FORMAT_NOT_ACCEPTED,
    }
    assert policy <= seen


def test_checkin_party_window_and_rooms():
    """Check-ins at one desk within the window share a stay; a named room keeps its own stay."""
    state = make_state(SiteKind.HOTEL, frozenset({"stay_adult"}))
    lane = LaneInfo(site_id=SITE, kind=SiteKind.HOTEL, lane_id="D1", direction=Direction.CHECKIN)
    item = Subject(format=ScanFormat.SSC1, person_key=ALICE, minor=True, nationality="CHN")
    rules = SiteRules()
    assert decide(item, lane=lane, rules=rules, state=state, lists=LISTS, now=NOW).stay_id == (
        "D1@x"
    )
    later = decide(item, lane=lane, rules=rules, state=state, lists=LISTS, now=NOW + 300)
    assert later.stay_id != "D1@x"
    assert later.reason is Reason.MINOR_UNACCOMPANIED
    roomed = dataclasses.replace(item, room="301", minor=False)
    first = decide(roomed, lane=lane, rules=rules, state=state, lists=LISTS, now=NOW)
    assert first.stay_id is not None and first.stay_id.startswith("room:301@")


def test_rules_validate_capacity():
    """A soft capacity above the hard one is refused, naming the setting."""
    with pytest.raises(ValueError, match="capacity_soft"):
        SiteRules(capacity_hard=5, capacity_soft=6)


def test_every_rule_setting_is_documented():
    """Each SiteRules field has a default and help text (config and docs rely on it)."""
    for f in dataclasses.fields(SiteRules):
        assert f.default is not dataclasses.MISSING, f.name
        assert len(f.metadata.get("help", "")) > 10, f.name


def test_subjects_from_documents_and_codes(trust, make_code):
    """Subjects from a code, an ID number and an MRZ carry the key and derived flags only."""
    code = verify(make_code(dob="2015-06-01", st="Y"), trust, NOW)
    assert isinstance(code, VerifiedCode)
    today = dt.date(2026, 9, 21)
    subject = subject_from_code(code, pepper=PEPPER, today=today)
    assert subject.person_key == person_key(PEPPER, "RIC", "11010519491231002X")
    assert (subject.minor, subject.status, subject.nationality) == (True, "Y", "CHN")
    assert subject.cti is not None and len(subject.cti) == 32
    cnid = parse_cnid("11010519491231002X", at=today)
    assert isinstance(cnid, CnidNumber)
    by_id = subject_from_cnid(cnid, pepper=PEPPER, today=today)
    assert by_id.person_key == subject.person_key and by_id.minor is False
    mrz = parse_mrz(
        [
            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
            "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
        ],
        at=today,
    )
    assert isinstance(mrz, Mrz)
    by_mrz = subject_from_mrz(mrz, pepper=PEPPER, today=today)
    assert by_mrz.person_key == person_key(PEPPER, "PP", "L898902C3", "UTO")
    assert (by_mrz.nationality, by_mrz.minor) == ("UTO", False)


def test_is_minor_on_the_sixteenth_birthday():
    """A person is a minor until the day they turn 16, leap-day births included."""
    assert is_minor(dt.date(2010, 5, 2), dt.date(2026, 5, 1))
    assert not is_minor(dt.date(2010, 5, 2), dt.date(2026, 5, 2))
    assert is_minor(dt.date(2008, 2, 29), dt.date(2024, 2, 28))
    assert not is_minor(dt.date(2008, 2, 29), dt.date(2024, 2, 29))
    assert is_minor(dt.date(2084, 2, 29), dt.date(2100, 2, 28))  # 2100 is not a leap year
    assert not is_minor(dt.date(2084, 2, 29), dt.date(2100, 3, 1))
