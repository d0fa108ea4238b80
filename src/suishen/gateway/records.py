"""Records that cross the gateway's modules: what a lane saw, what policy decided, what the
journal stores, and the alerts that leave the site.

Events are past-tense nouns (ScanDecided, PassageRecorded); every record is frozen, slotted and
keyword-only, and validated on creation. Times are POSIX seconds (float) from the wall clock,
taken once by the lane; the journal never changes them (sync relies on that, DESIGN §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from suishen.protocol.reasons import Reason
from suishen.protocol.vocabulary import (
    AlertKind,
    AlertRoute,
    Direction,
    PassageOutcomeKind,
    ScanFormat,
    SiteKind,
    Verdict,
    WatchLevel,
)

# The vocabulary is defined once in protocol.vocabulary; these names stay importable from here.
__all__ = [
    "AlertKind",
    "AlertRaised",
    "AlertRoute",
    "Decision",
    "Direction",
    "PassageOutcomeKind",
    "PassageRecorded",
    "Person",
    "ScanDecided",
    "ScanFormat",
    "SiteKind",
    "Verdict",
    "WatchLevel",
    "scan_decided",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """Who a scan names, in the forms that may travel: never a clear name or number."""

    person_key: str  # hex HMAC-SHA256 (DESIGN §4)
    nationality: str | None  # ISO 3166-1 alpha-3
    minor: bool | None  # under 16 at scan time, if the birth date is known
    status: str | None  # G / Y / R (SSC1 only)
    masked_name: str  # e.g. "张*明"
    masked_number: str  # e.g. "310***********1234"

    def __post_init__(self) -> None:
        if len(self.person_key) != 64:
            raise ValueError("person_key must be 64 hex characters")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRaised:
    """An alert a decision raises; it goes to the journal and on the sync fast lane."""

    kind: AlertKind
    route: AlertRoute
    detail: str  # short, no personal data in clear
    person_key: str | None = None
    level: WatchLevel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What site policy decided for one scan."""

    verdict: Verdict
    reason: Reason | None  # None exactly when allowed without remark
    alerts: tuple[AlertRaised, ...] = ()
    # Hotel check-in only: the stay this guest opens or joins (policy chooses it, state applies
    # it), so a replay of the journal rebuilds the same stays.
    stay_id: str | None = None

    def __post_init__(self) -> None:
        if self.verdict is Verdict.DENY and self.reason is None:
            raise ValueError("a denial needs a reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanDecided:
    """One scan and its decision: the journal's main record (seq assigned by the journal)."""

    ts: float
    site_id: str
    lane_id: str
    direction: Direction
    format: ScanFormat
    decision: Decision
    person: Person | None  # None when the scan named nobody we could verify
    cti: str | None = None  # hex code id (SSC1), for replay detection
    kid: str | None = None  # base64 key id the code was signed with
    zone: str = "main"
    latency_us: int = 0  # frame arrival to the journal commit (stamped by the journal)
    # time.monotonic() when the frame arrived: the journal writer turns it into latency_us.
    received_mono: float | None = field(default=None, repr=False, compare=False)
    # Lane facts for the row's detail JSON, e.g. a folded burst of discarded input
    # ({"discarded": 20000, "bytes": 40000, ...}); never personal data.
    detail: dict[str, object] | None = field(default=None, compare=False)
    # The full identity (idt, idn, nm, dob, nat) as a dict, sealed by the journal to the hub's
    # key and then dropped; never stored or logged in clear.
    identity_clear: dict[str, str] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PassageRecorded:
    """What the gate's sensor said after an open, journalled as its own event."""

    ts: float
    site_id: str
    lane_id: str
    scan_seq: int  # the seq of the ScanDecided it follows
    outcome: PassageOutcomeKind
    person_key: str | None = None
    direction: Direction = Direction.IN
    zone: str = "main"


_new = object.__new__
(
    _SET_TS,
    _SET_SITE,
    _SET_LANE,
    _SET_DIRECTION,
    _SET_FORMAT,
    _SET_DECISION,
    _SET_PERSON,
    _SET_CTI,
    _SET_KID,
    _SET_ZONE,
    _SET_LATENCY,
    _SET_RECEIVED,
    _SET_DETAIL,
    _SET_IDENTITY,
) = (ScanDecided.__dict__[f.name].__set__ for f in fields(ScanDecided))


def scan_decided(
    *,
    ts: float,
    site_id: str,
    lane_id: str,
    direction: Direction,
    format: ScanFormat,  # noqa: A002 - the field's name
    decision: Decision,
    person: Person | None,
    cti: str | None,
    kid: str | None,
    zone: str,
    identity_clear: dict[str, str] | None,
    received_mono: float | None,
) -> ScanDecided:
    """The pipeline's ScanDecided (latency_us 0, no detail), set through its slots: the same
    record as ``ScanDecided(...)`` (a test holds them equal; ScanDecided has no checks to
    skip) without the frozen __init__'s object.__setattr__ per field, on every scan's path."""
    record = _new(ScanDecided)
    _SET_TS(record, ts)
    _SET_SITE(record, site_id)
    _SET_LANE(record, lane_id)
    _SET_DIRECTION(record, direction)
    _SET_FORMAT(record, format)
    _SET_DECISION(record, decision)
    _SET_PERSON(record, person)
    _SET_CTI(record, cti)
    _SET_KID(record, kid)
    _SET_ZONE(record, zone)
    _SET_LATENCY(record, 0)
    _SET_RECEIVED(record, received_mono)
    _SET_DETAIL(record, None)
    _SET_IDENTITY(record, identity_clear)
    return record
