"""Site policy: one pure function, :func:`decide`, from a scan to a Decision (DESIGN §5).

No I/O and no clock: the lane passes ``now``, a read-only view of the site's state and the
lists in effect. The same inputs always give the same Decision.

Inputs
    ``scan``: a :class:`Subject` (who a verified code, ID number, MRZ or card names, in the
    forms that may travel: person key, nationality, minor flag, status colour, code id) or the
    verifier's :class:`~suishen.protocol.codes.Rejection`. ``lane``: where (:class:`LaneInfo`).
    ``rules``: the site's :class:`SiteRules` (config embeds it under ``[site.rules]``).

Rule modes
    Most rules have a :class:`RuleMode`: ``off`` (not checked), ``flag`` (let in, the reason is
    recorded as a remark on the allowed Decision) or ``deny`` (keep shut with the reason).
    A few default by site kind (a field left at None): ``formats``, ``registration``
    (deny at construction sites), ``minor_unaccompanied`` (flag at hotels),
    ``foreign_guest_report`` (on at hotels).

Order (entries: direction in, and checkin at a hotel desk). Every rule is evaluated; the
Decision's reason is that of the first rule in this order that denies, else of the first that
flags; alerts from every rule that raised one are all kept (a watchlist hit is never lost to
a replay denial):

    1. format_not_accepted  the scan's format is not accepted at this site
    2. verification         the verifier's rejection reason (expired, bad_signature, ...)
    3. watchlist            level deny: deny + alert; level notify: allow + silent alert
                            (no remark, so the lane shows nothing). First because it is the
                            most serious and staff must see why the gate stayed shut.
    4. replay               the code id was let in at another lane within its lifetime
                            (entry lanes only; the same lane again is the same person
                            retrying and anti-passback covers a code passed back)
    5. status_red           red status colour
    6. status_yellow        yellow status colour (deny by default; flag or off per site)
    7. not_registered       no valid registration at this site (construction; also a scan
                            naming nobody, such as an unknown card, where registration applies)
   7c. not_invited          invitations required (rules.invitations): a person who is neither
                            registered here nor invited for this lane or zone right now
   7b. outside_hours        the lane's time profile, or the registered worker's roster group's
                            profile, does not admit now (site local time, holidays and make-up
                            working days from the calendar); always deny. Entries only: an exit
                            is never held by a profile (egress is fail-safe)
    8. anti_passback        in twice without out (same zone; flag by default)
    9. capacity_full        the site is at its hard capacity (a person already inside does
                            not count twice); an entry that brings the count to the soft
                            capacity raises an alert (once per crossing), never a denial
   10. minor_unaccompanied  hotel check-in of a minor (<16) whose stay has no adult yet:
                            alert to the police and a remark; flag by default (the desk
                            decides face to face; ``deny`` refuses the check-in). Check the
                            guardian in first: the check runs when the minor checks in.
   11. foreign guest        hotel check-in, let in, of a guest whose nationality is not
                            domestic: an alert for the 24-hour registration report, never a
                            denial

Exits (direction out, and checkout at a desk) are let through whatever the entry rules say:
only format (1) and verification (2) apply, since the gate must know whose code it is, and
the watchlist raises its alert without keeping anyone in (level deny adds the remark
``watchlist``; level notify stays silent).
Status, replay, registration, anti-passback, capacity and minors do not apply to exits.
At a hotel desk, replay, anti-passback, capacity and registration do not apply; a check-in
picks the stay it joins (``Decision.stay_id``, see SiteState.stay_for_checkin) and a
check-out closes the guest's stay.

A subject without a person key (an HC1 code, whose identity is only a name and birth date,
or an unknown card) is decided on format, verification, replay, status and capacity; rules
that need a person (watchlist, anti-passback, stays) are skipped and registration, where it
applies, denies with not_registered. Occupancy cannot count such a person.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from suishen.gateway.lists import RosterEntry, WatchEntry
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
from suishen.protocol.codes import HC1, SSC1, Rejection, VerifiedCode
from suishen.protocol.identity import CnidNumber, IdKind, Mrz
from suishen.protocol.person import person_key as make_person_key
from suishen.protocol.reasons import Reason
from suishen.protocol.time_profiles import SiteHours

__all__ = [
    "DEFAULT_FORMATS",
    "LaneInfo",
    "ListsView",
    "RuleMode",
    "SiteRules",
    "Subject",
    "decide",
    "is_minor",
    "subject_from_card",
    "subject_from_cnid",
    "subject_from_code",
    "subject_from_mrz",
]

MINOR_AGE: Final = 16
HMT_NATIONALITY: Final = {"HK": "HKG", "MO": "MAC", "TW": "TWN"}


class RuleMode(enum.StrEnum):
    OFF = "off"  # not checked
    FLAG = "flag"  # let in; the reason is recorded as a remark
    DENY = "deny"  # keep shut with the reason


DEFAULT_FORMATS: Final[dict[SiteKind, frozenset[ScanFormat]]] = {
    SiteKind.BUILDING: frozenset({ScanFormat.SSC1}),
    SiteKind.VENUE: frozenset({ScanFormat.SSC1}),
    SiteKind.CONSTRUCTION: frozenset({ScanFormat.SSC1, ScanFormat.CNID, ScanFormat.CARD}),
    SiteKind.HOTEL: frozenset({ScanFormat.SSC1, ScanFormat.CNID, ScanFormat.MRZ}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteRules:
    """Site policy settings (``[site.rules]``); None means "the site kind's default"."""

    formats: frozenset[ScanFormat] | None = field(
        default=None,
        metadata={
            "help": "scan formats accepted here (absent: by site kind: building and venue SSC1; "
            "construction SSC1, CNID, CARD; hotel SSC1, CNID, MRZ)"
        },
    )
    watchlist: bool = field(
        default=True,
        metadata={
            "help": "check the watchlist: level deny keeps shut and alerts, level notify "
            "lets in with a silent alert"
        },
    )
    watchlist_on_exit: bool = field(
        default=True,
        metadata={"help": "raise watchlist alerts on exits too (an exit is never kept shut)"},
    )
    replay: RuleMode = field(
        default=RuleMode.DENY,
        metadata={"help": "a code id already let in at another entry lane within its lifetime"},
    )
    replay_ttl_s: int = field(
        default=360,
        metadata={
            "help": "how long a code id is remembered after it was let in (a code lives "
            "<= 300 s plus clock skew)",
            "ge": 1,
            "le": 86400,
        },
    )
    status_red: RuleMode = field(
        default=RuleMode.DENY,
        metadata={"help": "a red status colour"},
    )
    status_yellow: RuleMode = field(
        default=RuleMode.DENY,
        metadata={"help": "a yellow status colour"},
    )
    registration: RuleMode | None = field(
        default=None,
        metadata={
            "help": "only workers registered at this site, within their validity dates "
            "(absent: deny at construction sites, off elsewhere)"
        },
    )
    invitations: RuleMode = field(
        default=RuleMode.OFF,
        metadata={
            "help": "visitors only by invitation (deny: a person neither registered here nor "
            "invited for this lane or zone now is refused, not_invited)"
        },
    )
    anti_passback: RuleMode = field(
        default=RuleMode.FLAG,
        metadata={
            "help": "an entry by someone already inside the same zone (in twice without out)"
        },
    )
    capacity_hard: int | None = field(
        default=None,
        metadata={
            "help": "people inside at which entry is denied with capacity_full (absent: no limit)",
            "ge": 1,
        },
    )
    capacity_soft: int | None = field(
        default=None,
        metadata={
            "help": "people inside at which an entry raises a capacity alert (absent: none)",
            "ge": 1,
        },
    )
    capacity_route: AlertRoute = field(
        default=AlertRoute.STAFF,
        metadata={"help": "who handles a capacity alert"},
    )
    minor_unaccompanied: RuleMode | None = field(
        default=None,
        metadata={
            "help": "hotel check-in of a minor (< 16) whose stay has no adult: an alert "
            "and this mode (absent: flag at hotels, off elsewhere)"
        },
    )
    minor_route: AlertRoute = field(
        default=AlertRoute.POLICE,
        metadata={"help": "who handles an unaccompanied-minor alert"},
    )
    foreign_guest_report: bool | None = field(
        default=None,
        metadata={
            "help": "alert on hotel check-in of a guest of another nationality, for the 24-hour "
            "registration report (absent: on at hotels, off elsewhere)"
        },
    )
    foreign_guest_route: AlertRoute = field(
        default=AlertRoute.POLICE,
        metadata={"help": "who receives the foreign-guest registration alert"},
    )
    domestic_nationalities: frozenset[str] = field(
        default=frozenset({"CHN"}),
        metadata={"help": "nationalities (ISO 3166-1 alpha-3) that are not foreign guests"},
    )
    stay_party_window_s: int = field(
        default=120,
        metadata={
            "help": "check-ins at one desk within this many seconds of the previous one "
            "join its stay when the desk gives no room",
            "ge": 0,
            "le": 3600,
        },
    )

    def __post_init__(self) -> None:
        hard, soft = self.capacity_hard, self.capacity_soft
        if hard is not None and hard < 1:
            raise ValueError("capacity_hard: must be at least 1")
        if soft is not None and soft < 1:
            raise ValueError("capacity_soft: must be at least 1")
        if hard is not None and soft is not None and soft > hard:
            raise ValueError(f"capacity_soft: must not exceed capacity_hard ({hard})")
        if self.replay_ttl_s < 1:
            raise ValueError("replay_ttl_s: must be at least 1")
        if self.stay_party_window_s < 0:
            raise ValueError("stay_party_window_s: must not be negative")

    # ----- per-kind defaults

    def accepted_formats(self, kind: SiteKind) -> frozenset[ScanFormat]:
        return self.formats if self.formats is not None else DEFAULT_FORMATS[kind]

    def registration_mode(self, kind: SiteKind) -> RuleMode:
        if self.registration is not None:
            return self.registration
        return RuleMode.DENY if kind is SiteKind.CONSTRUCTION else RuleMode.OFF

    def minor_mode(self, kind: SiteKind) -> RuleMode:
        if self.minor_unaccompanied is not None:
            return self.minor_unaccompanied
        return RuleMode.FLAG if kind is SiteKind.HOTEL else RuleMode.OFF

    def foreign_report(self, kind: SiteKind) -> bool:
        if self.foreign_guest_report is not None:
            return self.foreign_guest_report
        return kind is SiteKind.HOTEL


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """Who a scan names, as policy needs it: never a clear name or document number."""

    format: ScanFormat
    person_key: str | None  # None: the scan names nobody we can key (HC1, unknown card)
    nationality: str | None = None  # ISO 3166-1 alpha-3
    minor: bool | None = None  # under 16 at scan time, when the birth date is known
    status: str | None = None  # G / Y / R (SSC1)
    cti: str | None = None  # hex code id (SSC1), for replay
    exp: int | None = None  # code expiry, POSIX seconds
    room: str | None = None  # hotel desk: the room the guest checks into, if the desk says

    def __post_init__(self) -> None:
        if self.person_key is not None and len(self.person_key) != 64:
            raise ValueError("person_key must be 64 hex characters")
        if self.status is not None and self.status not in ("G", "Y", "R"):
            raise ValueError("status must be G, Y or R")


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneInfo:
    """Where a scan happened."""

    site_id: str
    kind: SiteKind
    lane_id: str
    direction: Direction
    zone: str = "main"
    hours: SiteHours | None = None  # the lane's time profile (entries outside: outside_hours)
    group_hours: Mapping[str, SiteHours] = field(default_factory=dict)  # roster group -> profile


class ListsView(Protocol):
    """What policy reads from the lists (gateway.lists.Lists provides it)."""

    def watch(self, person_key: str, now: float) -> WatchEntry | None: ...

    def worker(self, person_key: str, site_id: str, now: float) -> RosterEntry | None: ...

    def invited(
        self, person_key: str, site_id: str, lane_id: str, zone: str, now: float
    ) -> bool: ...


# --------------------------------------------------------------------------- subjects


def is_minor(birth: dt.date, today: dt.date) -> bool:
    """Under 16 on `today`."""
    try:
        sixteenth = birth.replace(year=birth.year + MINOR_AGE)
    except ValueError:  # born on 29 February, the 16th year is not a leap year
        sixteenth = dt.date(birth.year + MINOR_AGE, 3, 1)
    return today < sixteenth


def _birth(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def subject_from_code(code: VerifiedCode, *, pepper: bytes, today: dt.date) -> Subject:
    """An SSC1 code names its holder by person key; an HC1 code carries no document number,
    so its subject has none (see the module docstring)."""
    exp = code.exp
    cti = code.cti.hex() if code.cti else None
    ident = code.identity
    if code.format == SSC1 and ident is not None:
        birth = _birth(ident.dob)
        return Subject(
            format=ScanFormat.SSC1,
            person_key=make_person_key(pepper, ident.idt, ident.idn, ident.nat),
            nationality=ident.nat,
            minor=None if birth is None else is_minor(birth, today),
            status=ident.st,
            cti=cti,
            exp=exp,
        )
    fmt = ScanFormat.HC1 if code.format == HC1 else ScanFormat.UNKNOWN
    dob = code.body.get("dob") if code.format == HC1 else None
    birth = _birth(dob) if isinstance(dob, str) else None
    return Subject(
        format=fmt,
        person_key=None,
        minor=None if birth is None else is_minor(birth, today),
        cti=cti,
        exp=exp,
    )


def subject_from_cnid(number: CnidNumber, *, pepper: bytes, today: dt.date) -> Subject:
    """A PRC resident ID / HMT permit / FPR number from an ID reader."""
    if number.kind is IdKind.RIC:
        nationality: str | None = "CHN"
    elif number.kind is IdKind.HMT and number.permit_region is not None:
        nationality = HMT_NATIONALITY[number.permit_region]
    else:
        nationality = None  # FPR: a numeric nationality code, not mapped here
    return Subject(
        format=ScanFormat.CNID,
        person_key=make_person_key(pepper, str(number.kind), number.number),
        nationality=nationality,
        minor=is_minor(number.birth_date, today),
    )


def subject_from_mrz(mrz: Mrz, *, pepper: bytes, today: dt.date) -> Subject:
    """An ICAO 9303 MRZ from a desk document reader (keyed as a passport, DESIGN §4)."""
    birth = mrz.birth_date
    nationality = "DEU" if mrz.nationality == "D" else mrz.nationality
    return Subject(
        format=ScanFormat.MRZ,
        person_key=make_person_key(pepper, "PP", mrz.document_number, nationality),
        nationality=nationality or None,
        minor=None if birth is None else is_minor(birth, today),
    )


def subject_from_card(person_key: str | None) -> Subject:
    """An IC / Wiegand card, already resolved to a worker by the roster (None: unknown)."""
    return Subject(format=ScanFormat.CARD, person_key=person_key)


# --------------------------------------------------------------------------- decide


def _format_of(rejection: Rejection) -> ScanFormat | None:
    try:
        return ScanFormat(rejection.format) if rejection.format else None
    except ValueError:
        return None


class _Verdicts:
    """Collects what each rule says; the first denial (else the first flag) gives the reason."""

    __slots__ = ("alerts", "deny", "flag")

    def __init__(self) -> None:
        self.deny: Reason | None = None
        self.flag: Reason | None = None
        self.alerts: list[AlertRaised] = []

    def apply(self, mode: RuleMode, reason: Reason) -> None:
        if mode is RuleMode.DENY:
            self.deny = self.deny or reason
        elif mode is RuleMode.FLAG:
            self.flag = self.flag or reason

    def decision(self, stay_id: str | None = None) -> Decision:
        if self.deny is not None:
            return Decision(verdict=Verdict.DENY, reason=self.deny, alerts=tuple(self.alerts))
        return Decision(
            verdict=Verdict.ALLOW, reason=self.flag, alerts=tuple(self.alerts), stay_id=stay_id
        )


def decide(
    scan: Subject | Rejection,
    *,
    lane: LaneInfo,
    rules: SiteRules,
    state: SiteState,
    lists: ListsView,
    now: float,
) -> Decision:
    """Decide one scan (see the module docstring for the rules and their order)."""
    kind, direction = lane.kind, lane.direction
    fmt = _format_of(scan) if isinstance(scan, Rejection) else scan.format
    # 1. format
    if fmt is not None and fmt not in rules.accepted_formats(kind):
        return Decision(verdict=Verdict.DENY, reason=Reason.FORMAT_NOT_ACCEPTED)
    # 2. verification
    if isinstance(scan, Rejection):
        return Decision(verdict=Verdict.DENY, reason=scan.reason)
    if direction in (Direction.OUT, Direction.CHECKOUT):
        return _exit(scan, lane, rules, lists, now)
    return _entry(scan, lane=lane, rules=rules, state=state, lists=lists, now=now)


def _watch_alert(entry: WatchEntry, person_key: str, lane: LaneInfo) -> AlertRaised:
    return AlertRaised(
        kind=AlertKind.WATCHLIST,
        route=entry.route,
        level=entry.level,
        person_key=person_key,
        detail=f"watchlist {entry.level} ({entry.reason}) at {lane.lane_id} {lane.direction}",
    )


def _exit(
    scan: Subject, lane: LaneInfo, rules: SiteRules, lists: ListsView, now: float
) -> Decision:
    person_key = scan.person_key
    if rules.watchlist and rules.watchlist_on_exit and person_key is not None:
        entry = lists.watch(person_key, now)
        if entry is not None:
            return Decision(
                verdict=Verdict.ALLOW,
                reason=Reason.WATCHLIST if entry.level is WatchLevel.DENY else None,
                alerts=(_watch_alert(entry, person_key, lane),),
            )
    return Decision(verdict=Verdict.ALLOW, reason=None)


def _entry(
    scan: Subject,
    *,
    lane: LaneInfo,
    rules: SiteRules,
    state: SiteState,
    lists: ListsView,
    now: float,
) -> Decision:
    kind, person_key = lane.kind, scan.person_key
    at_desk = lane.direction is Direction.CHECKIN
    out = _Verdicts()
    # 3. watchlist
    if rules.watchlist and person_key is not None:
        entry = lists.watch(person_key, now)
        if entry is not None:
            out.alerts.append(_watch_alert(entry, person_key, lane))
            if entry.level is WatchLevel.DENY:
                out.apply(RuleMode.DENY, Reason.WATCHLIST)
    # 4. replay (gate entry lanes only)
    if not at_desk and scan.cti is not None:
        seen_at = state.replay_lane(scan.cti, now)
        if seen_at is not None and seen_at != lane.lane_id:
            out.apply(rules.replay, Reason.REPLAY)
    # 5, 6. status colour
    if scan.status == "R":
        out.apply(rules.status_red, Reason.STATUS_RED)
    elif scan.status == "Y":
        out.apply(rules.status_yellow, Reason.STATUS_YELLOW)
    # 7. registration
    if not at_desk:
        mode = rules.registration_mode(kind)
        worker = None
        invitations = rules.invitations
        if person_key is not None and (
            mode is not RuleMode.OFF or lane.group_hours or invitations is not RuleMode.OFF
        ):
            worker = lists.worker(person_key, lane.site_id, now)
        if mode is not RuleMode.OFF and worker is None:
            out.apply(mode, Reason.NOT_REGISTERED)
        # 7c. invitations: a registered person needs none
        if (
            invitations is not RuleMode.OFF
            and worker is None
            and (
                person_key is None
                or not lists.invited(person_key, lane.site_id, lane.lane_id, lane.zone, now)
            )
        ):
            out.apply(invitations, Reason.NOT_INVITED)
        # 7b. time profiles: the lane's, then the worker's group's
        group = (
            None if worker is None or worker.group is None else lane.group_hours.get(worker.group)
        )
        if (lane.hours is not None and not lane.hours.admits_at(now)) or (
            group is not None and not group.admits_at(now)
        ):
            out.apply(RuleMode.DENY, Reason.OUTSIDE_HOURS)
    inside_zone = None if person_key is None else state.zone_of(person_key)
    if not at_desk:
        # 8. anti-passback
        if inside_zone == lane.zone:
            out.apply(rules.anti_passback, Reason.ANTI_PASSBACK)
        # 9. capacity: a person already inside does not add to the count
        if inside_zone is None:
            _capacity(out, rules, state, lane)
    stay_id = None
    if at_desk:
        stay_id = state.stay_for_checkin(
            lane.lane_id, now, room=scan.room, window_s=rules.stay_party_window_s
        )
        # 10. minors
        mode = rules.minor_mode(kind)
        if mode is not RuleMode.OFF and scan.minor:
            stay = state.stay(stay_id)
            if stay is None or not stay.has_adult:
                out.apply(mode, Reason.MINOR_UNACCOMPANIED)
                out.alerts.append(
                    AlertRaised(
                        kind=AlertKind.MINOR_UNACCOMPANIED,
                        route=rules.minor_route,
                        person_key=person_key,
                        detail=f"minor checking in without an adult in stay {stay_id}",
                    )
                )
        # 11. foreign guests
        nationality = scan.nationality
        if (
            out.deny is None
            and rules.foreign_report(kind)
            and nationality is not None
            and nationality not in rules.domestic_nationalities
        ):
            out.alerts.append(
                AlertRaised(
                    kind=AlertKind.FOREIGN_GUEST,
                    route=rules.foreign_guest_route,
                    person_key=person_key,
                    detail=f"foreign guest ({nationality}) checked in, stay {stay_id}",
                )
            )
    return out.decision(stay_id)


def _capacity(out: _Verdicts, rules: SiteRules, state: SiteState, lane: LaneInfo) -> None:
    hard, soft = rules.capacity_hard, rules.capacity_soft
    if hard is None and soft is None:
        return
    inside = state.count_with_entering()  # entries awaiting passage take their place
    if hard is not None and inside >= hard:
        out.apply(RuleMode.DENY, Reason.CAPACITY_FULL)
        return
    if soft is not None and inside + 1 == soft and out.deny is None:
        out.alerts.append(
            AlertRaised(
                kind=AlertKind.CAPACITY,
                route=rules.capacity_route,
                detail=f"soft capacity {soft} reached at {lane.site_id} (lane {lane.lane_id})",
            )
        )
