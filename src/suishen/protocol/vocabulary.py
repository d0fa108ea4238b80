"""The shared vocabulary (DESIGN §2, §3): defined once, used by the journal, the wire format, the
bundles, the hub's tables and the CLI.

Reasons live in protocol.reasons (Reason); everything else a record can say is here. Each enum's
values are what the journal stores, the wire carries and the SQL CHECK constraints list
(tests/unit/test_vocabulary.py holds the migrations to these values).
"""

from __future__ import annotations

import enum

from suishen.protocol.reasons import Reason

__all__ = [
    "AlertKind",
    "AlertRoute",
    "AlertStep",
    "BundleKind",
    "CertificateRetired",
    "CloseReason",
    "Direction",
    "PassageOutcomeKind",
    "Reason",
    "RecordKind",
    "Role",
    "ScanFormat",
    "SiteKind",
    "StatusColour",
    "Verdict",
    "WatchLevel",
    "values",
]


class RecordKind(enum.StrEnum):
    """What a journal row (and a wire row) records."""

    SCAN = "scan"
    PASSAGE = "passage"
    ALERT = "alert"
    DEVICE = "device"


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


class StatusColour(enum.StrEnum):
    """The status colour a Suishen code carries (claim "st")."""

    GREEN = "G"
    YELLOW = "Y"
    RED = "R"


class WatchLevel(enum.StrEnum):
    NOTIFY = "notify"  # let in, silent alert
    DENY = "deny"  # keep shut, alert


class AlertRoute(enum.StrEnum):
    POLICE = "police"
    STAFF = "staff"  # site staff (a non-police handler)
    CITY_OPS = "city_ops"  # city operations (a non-police handler; an alert is dispatched there)


class AlertKind(enum.StrEnum):
    WATCHLIST = "watchlist"
    MINOR_UNACCOMPANIED = "minor_unaccompanied"
    FOREIGN_GUEST = "foreign_guest"  # feeds the 24-hour registration report
    CAPACITY = "capacity"  # soft capacity reached
    JOURNAL = "journal"  # the journal is near full with unsynced rows
    CLOCK = "clock"  # the hub refused rows whose time is outside its window (gateway clock)
    EMERGENCY = "emergency"  # emergency release declared or ended at a site (fire alarm, command)


class PassageOutcomeKind(enum.StrEnum):
    PASSED = "passed"
    NOT_PASSED = "not_passed"


class AlertStep(enum.StrEnum):
    """The steps of an alert's closed loop (接报、受理、联动、处置、反馈) and its end, in order."""

    RECEIVED = "received"  # 接报
    ACCEPTED = "accepted"  # 受理
    DISPATCHED = "dispatched"  # 联动
    HANDLED = "handled"  # 处置
    FED_BACK = "fed_back"  # 反馈
    CLOSED = "closed"


class BundleKind(enum.StrEnum):
    """The signed lists the hub sends down."""

    TRUST = "trust"
    WATCHLIST = "watchlist"
    ROSTER = "roster"
    CALENDAR = "calendar"  # the holiday calendar (protocol/time_profiles.parse_calendar)
    EMERGENCY = "emergency"  # the hub's emergency command for a site (per site)


class Role(enum.StrEnum):
    """What a person using the hub may do."""

    SITE_MANAGER = "site_manager"
    TENANT = "tenant"  # a company in a building: its own invitations and their arrivals
    ANALYST = "analyst"
    ADMIN = "admin"


class CertificateRetired(enum.StrEnum):
    """Why the hub stopped accepting a gateway certificate it had pinned."""

    REPLACED = "replaced"  # a re-issued certificate took its place
    REVOKED = "revoked"  # `suishen hub gateway revoke`


class CloseReason(enum.StrEnum):
    """How a derived visit or hotel stay ended (central/derive.py)."""

    OUT = "out"  # the person's out (checkout) scan at the site
    RESET = "reset"  # the site's daily reset
    MAX_LENGTH = "max_length"  # the longest visit or stay allowed
    REENTRY = "reentry"  # the person's next in (checkin) there, with no out between


def values(vocabulary: type[enum.StrEnum]) -> frozenset[str]:
    """The wire/SQL values of one vocabulary, for validators and CHECK lists."""
    return frozenset(member.value for member in vocabulary)
