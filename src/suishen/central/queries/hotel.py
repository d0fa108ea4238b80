"""A hotel's own pages: guests by room now, today's check-ins, minors without a guardian, and the
foreign-guest registration list with its 24-hour deadline (DESIGN §5, §7; issue 10).

Every function is ``(connection, scope, params) -> frozen rows`` and starts with
``require_site``: a site outside the scope, unknown, or not a hotel is NotFound.  Stays are the
rows the derivation fills (a "checkin" scan opens one, "checkout" closes it); the masked name and
number shown to staff are those of the check-in scan (a stay holds no name).

Definitions (the page says the same):

- in house at ``now``: checked in at or before ``now``, not checked out by then, and not past
  the stay's ``close_by`` (the longest stay the hub allows, deploy/sql/0008) either;
- a minor (under 16 at check-in) has a guardian in the stay when their ``guardian_person_key``
  is in house at the site, or an adult guest is in house in the same room;
- foreign guest: a nationality other than CHN (foreigners and Hong Kong, Macao and Taiwan
  residents alike are registered with the police within 24 hours of check-in); the list holds
  every stay not yet reported and those checked in during the last ``days`` days;
- deadline: check-in + 24 h; status ``due`` (not reported, before the deadline), ``overdue``
  (not reported, after it), ``reported`` or ``reported_late``.

Marking a stay reported is a change: central/store/hotel_reports.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Final

import asyncpg

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.queries.sitekind import (
    SiteRef,
    check_aware,
    check_site_id,
    now_or_database,
    require_site,
)
from suishen.central.scope import Scope

HOTEL: Final = "hotel"
DOMESTIC: Final = "CHN"
REPORT_DEADLINE: Final = dt.timedelta(hours=24)
MAX_LIST_DAYS: Final = 28
MAX_GATEWAY_ID: Final = 64
_JOURNAL_ID: Final = re.compile("[0-9a-f]{16}")  # as sync/wire.py takes it


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StayKey:
    """Names one stay: its check-in record (the table's key, journal included: a recreated
    journal numbers its records from 1 again, so gateway, seq and time alone can name two
    stays).  ``token`` is its form value."""

    gateway_id: str
    seq: int
    checkin_ts: dt.datetime
    journal_id: str = ""  # '': a gateway from before journal ids

    @property
    def token(self) -> str:
        micros = round(self.checkin_ts.timestamp() * 1_000_000)
        return f"{self.gateway_id}|{self.journal_id}|{self.seq}|{micros}"

    @classmethod
    def parse(cls, token: str) -> StayKey:
        """The key in a form token; BadRequest for anything else."""
        parts = token.split("|")
        if len(token) > 160 or len(parts) != 4:
            raise BadRequest("not a stay", field="stay")
        gateway_id, journal_id, seq, micros = parts
        if not 1 <= len(gateway_id) <= MAX_GATEWAY_ID or not (
            seq.isascii() and seq.isdigit() and micros.isascii() and micros.isdigit()
        ):
            raise BadRequest("not a stay", field="stay")
        if journal_id and _JOURNAL_ID.fullmatch(journal_id) is None:
            raise BadRequest("not a stay", field="stay")
        if not 0 < int(seq) < 2**63 or len(micros) > 17:
            raise BadRequest("not a stay", field="stay")
        ts = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(micros))
        return cls(gateway_id=gateway_id, journal_id=journal_id, seq=int(seq), checkin_ts=ts)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HotelParams:
    """One hotel, at ``now`` (None: the database's clock)."""

    site_id: str
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        check_aware(self.now)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CheckinsParams:
    """One hotel's check-ins on ``day`` (the site's local calendar day; None: today there)."""

    site_id: str
    day: dt.date | None = None
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        check_aware(self.now)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ForeignGuestParams:
    """One hotel's foreign-guest list: every unreported stay plus the last ``days`` days."""

    site_id: str
    days: int = 7
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        check_aware(self.now)
        if not 1 <= self.days <= MAX_LIST_DAYS:
            raise BadRequest(f"days must be 1 to {MAX_LIST_DAYS}", field="days")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StayRow:
    """One stay as staff see it (masked name and number only)."""

    key: StayKey
    site_id: str
    room: str | None
    person_key: str
    masked_name: str
    masked_number: str
    nationality: str | None
    minor: bool
    checkin_ts: dt.datetime
    checkout_ts: dt.datetime | None
    guardian_present: bool  # meaningful for minors: see the module docstring

    @property
    def foreign(self) -> bool:
        return self.nationality is not None and self.nationality != DOMESTIC

    @property
    def unaccompanied_minor(self) -> bool:
        return self.minor and not self.guardian_present


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ForeignGuestRow:
    """One foreign guest's stay and where its registration report stands."""

    stay: StayRow
    deadline: dt.datetime
    reported_at: dt.datetime | None
    status: str  # due | overdue | reported | reported_late

    @property
    def overdue(self) -> bool:
        return self.status in ("overdue", "reported_late")


# The stays of one site with their check-in scan's masks and the guardian flag.  $1 site,
# $2 "now", $3 lower bound of check-in (or NULL), $4 upper bound of check-in (or NULL),
# $5 in-house only.  A guardian is looked for among the stays in house at $2.
_STAYS_SQL: Final = """
    WITH house AS (
        SELECT person_key, room, minor
        FROM stays
        WHERE site_id = $1 AND checkin_ts <= $2 AND (checkout_ts IS NULL OR checkout_ts > $2)
          AND (close_by IS NULL OR close_by > $2)
    )
    SELECT st.site_id, st.checkin_gateway_id, st.checkin_journal_id, st.checkin_seq,
           st.checkin_ts, st.checkout_ts,
           st.room, st.person_key, st.nationality, coalesce(st.minor, false) AS minor,
           st.reported_at,
           coalesce(sc.masked_name, '') AS masked_name,
           coalesce(sc.masked_number, '') AS masked_number,
           EXISTS (
               SELECT 1 FROM house g
               WHERE g.person_key <> st.person_key AND g.minor IS NOT TRUE
                 AND (g.person_key = st.guardian_person_key
                      OR (st.room IS NOT NULL AND g.room = st.room))
           ) AS guardian_present
    FROM stays st
    LEFT JOIN LATERAL (
        SELECT s.masked_name, s.masked_number FROM scans s
        WHERE s.site_id = st.site_id AND s.gateway_id = st.checkin_gateway_id
          AND s.journal_id = st.checkin_journal_id AND s.seq = st.checkin_seq
          AND s.ts = st.checkin_ts
        LIMIT 1
    ) sc ON true
    WHERE st.site_id = $1
      AND ($3::timestamptz IS NULL OR st.checkin_ts >= $3)
      AND ($4::timestamptz IS NULL OR st.checkin_ts < $4)
      AND (NOT $5 OR (st.checkin_ts <= $2 AND (st.checkout_ts IS NULL OR st.checkout_ts > $2)
                      AND (st.close_by IS NULL OR st.close_by > $2)))
      AND (NOT $6 OR (st.nationality IS NOT NULL AND st.nationality <> 'CHN'
                      AND (st.reported_at IS NULL OR st.checkin_ts >= $3)))
    ORDER BY st.room NULLS LAST, st.checkin_ts, st.checkin_gateway_id, st.checkin_seq
"""


def _stay(r: asyncpg.Record) -> StayRow:
    return StayRow(
        key=StayKey(
            gateway_id=r["checkin_gateway_id"],
            journal_id=r["checkin_journal_id"],
            seq=r["checkin_seq"],
            checkin_ts=r["checkin_ts"],
        ),
        site_id=r["site_id"],
        room=r["room"],
        person_key=r["person_key"],
        masked_name=r["masked_name"],
        masked_number=r["masked_number"],
        nationality=r["nationality"],
        minor=r["minor"],
        checkin_ts=r["checkin_ts"],
        checkout_ts=r["checkout_ts"],
        guardian_present=r["guardian_present"],
    )


async def stays_now(con: Connection, scope: Scope, params: HotelParams) -> tuple[StayRow, ...]:
    """The guests in house at ``now``, by room (rooms unknown last) and check-in time."""
    await require_site(con, scope, params.site_id, HOTEL)
    now = await now_or_database(con, params.now)
    rows = await con.fetch(_STAYS_SQL, params.site_id, now, None, None, True, False)
    return tuple(_stay(r) for r in rows)


async def unaccompanied_minors(
    con: Connection, scope: Scope, params: HotelParams
) -> tuple[StayRow, ...]:
    """The minors in house at ``now`` with no guardian in the stay (module docstring)."""
    return tuple(s for s in await stays_now(con, scope, params) if s.unaccompanied_minor)


def local_day(site: SiteRef, now: dt.datetime) -> dt.date:
    """The calendar day at the site when it is ``now``."""
    return site.local_day(now)


async def checkins_today(
    con: Connection, scope: Scope, params: CheckinsParams
) -> tuple[StayRow, ...]:
    """The stays checked in during the site's local day (already checked out or not)."""
    site = await require_site(con, scope, params.site_id, HOTEL)
    now = await now_or_database(con, params.now)
    start, end = site.day_bounds(params.day or site.local_day(now))
    rows = await con.fetch(_STAYS_SQL, params.site_id, now, start, end, False, False)
    stays = (_stay(r) for r in rows)
    return tuple(sorted(stays, key=lambda s: (s.checkin_ts, s.key.gateway_id, s.key.seq)))


def report_status(
    checkin_ts: dt.datetime, reported_at: dt.datetime | None, now: dt.datetime
) -> str:
    """Where a foreign guest's registration report stands (module docstring)."""
    deadline = checkin_ts + REPORT_DEADLINE
    if reported_at is not None:
        return "reported" if reported_at <= deadline else "reported_late"
    return "overdue" if now > deadline else "due"


async def foreign_guests(
    con: Connection, scope: Scope, params: ForeignGuestParams
) -> tuple[ForeignGuestRow, ...]:
    """Foreign guests' stays: every one not yet reported, and those of the last ``days`` days;
    the most urgent first (overdue, then due by deadline, then reported, newest first)."""
    await require_site(con, scope, params.site_id, HOTEL)
    now = await now_or_database(con, params.now)
    since = now - dt.timedelta(days=params.days)
    rows = await con.fetch(_STAYS_SQL, params.site_id, now, since, None, False, True)
    found = []
    for row in rows:
        stay = _stay(row)
        status = report_status(stay.checkin_ts, row["reported_at"], now)
        found.append(
            ForeignGuestRow(
                stay=stay,
                deadline=stay.checkin_ts + REPORT_DEADLINE,
                reported_at=row["reported_at"],
                status=status,
            )
        )
    return tuple(sorted(found, key=_urgency))


def _urgency(guest: ForeignGuestRow) -> tuple[int, float]:
    if guest.reported_at is None:
        return (0 if guest.status == "overdue" else 1, guest.deadline.timestamp())
    return (2, -guest.stay.checkin_ts.timestamp())
