"""Records that cross the gateway's modules: what a lane saw, what policy decided, what the
journal stores, and the alerts that leave the site.

Events are past-tense nouns (ScanDecided, PassageRecorded); every record is frozen, slotted and
keyword-only, and validated on creation. Times are POSIX seconds (float) from the wall clock,
taken once by the lane; the journal never changes them (sync relies on that, DESIGN §6).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from suishen.protocol.reasons import Reason


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    CHECKIN = "checkin"  # hotel front desk: creates a stay
    CHECKOUT = "checkout"  # hotel front desk: closes a stay


class SiteKind(enum.StrEnum):
    BUILDING = "building"
    CONSTRUCTION = "construction"
    HOTEL = "hotel"
    VENUE = "venue"


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class ScanFormat(enum.StrEnum):
    SSC1 = "SSC1"  # Suishen code
    HC1 = "HC1"  # EU DCC
    CNID = "CNID"  # PRC resident ID number from an ID reader
    MRZ = "MRZ"  # ICAO 9303 machine-readable zone from a document reader
    CARD = "CARD"  # IC / Wiegand card number (construction workers)
    UNKNOWN = "UNKNOWN"  # could not tell (malformed input)


class WatchLevel(enum.StrEnum):
    NOTIFY = "notify"  # let in, silent alert
    DENY = "deny"  # keep shut, alert


class AlertRoute(enum.StrEnum):
    POLICE = "police"
    STAFF = "staff"  # site staff / city operations (non-police handlers)


class AlertKind(enum.StrEnum):
    WATCHLIST = "watchlist"
    MINOR_UNACCOMPANIED = "minor_unaccompanied"
    FOREIGN_GUEST = "foreign_guest"  # feeds the 24-hour registration report
    CAPACITY = "capacity"  # soft capacity reached
    DEVICE = "device"  # a device down for longer than its grace time
    JOURNAL = "journal"  # the journal is near full with unsynced rows
    CLOCK = "clock"  # the hub refused rows for their time: this gateway's clock is off


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
    latency_us: int = 0  # frame-complete to decision
    # The full identity (idt, idn, nm, dob, nat) as a dict, sealed by the journal to the hub's
    # key and then dropped; never stored or logged in clear.
    identity_clear: dict[str, str] | None = field(default=None, repr=False, compare=False)


class PassageOutcomeKind(enum.StrEnum):
    PASSED = "passed"
    NOT_PASSED = "not_passed"


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
