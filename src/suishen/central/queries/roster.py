"""A construction site's own pages: its roster, today's attendance, and the muster list of who
is on site now by employer and trade (DESIGN §5, §7; issue 10).

Every function is ``(connection, scope, params) -> frozen rows`` and starts with
``require_site``: a site outside the scope, unknown, or not a construction site is NotFound.
Changes to the roster are in central/store/workers.py.

What counts as a passage: an allowed scan with direction "in" or "out" at the site, unless the
gate's sensor said ``not_passed`` for it (a passage record for that scan).  Scans with no person
key (a card nobody holds) are left out.

- attendance (one local calendar day of the site): per person, the first "in", the last "out",
  and the minutes on site: each "in" followed by an "out" counts the time between them; an "in"
  followed by another "in" (an "out" missed) counts nothing; a last "in" with no "out" after it
  counts until ``now`` (or the day's end, for a past day).  Every current worker is listed,
  present or not; people who came in without being on the roster are listed too (``registered``
  false).
- muster (now): everyone whose latest passage within the last ``window_hours`` hours was an
  "in", by employer and trade (the roster's; '' for people not on it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.queries.sitekind import (
    check_aware,
    check_site_id,
    now_or_database,
    require_site,
)
from suishen.central.scope import Scope

CONSTRUCTION: Final = "construction"
MAX_WINDOW_HOURS: Final = 72


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RosterParams:
    """One site's roster; ``include_expired`` adds the registrations already ended."""

    site_id: str
    include_expired: bool = False

    def __post_init__(self) -> None:
        check_site_id(self.site_id)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttendanceParams:
    """One site's attendance on ``day`` (its local calendar day; None: today there)."""

    site_id: str
    day: dt.date | None = None
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        check_aware(self.now)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MusterParams:
    """Who is on one site at ``now``, looking back ``window_hours`` for their last passage."""

    site_id: str
    now: dt.datetime | None = None
    window_hours: int = 24

    def __post_init__(self) -> None:
        check_site_id(self.site_id)
        check_aware(self.now)
        if not 1 <= self.window_hours <= MAX_WINDOW_HOURS:
            raise BadRequest(f"window_hours must be 1 to {MAX_WINDOW_HOURS}", field="window_hours")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRow:
    """One registration as staff see it (masked name, number and card)."""

    site_id: str
    person_key: str
    masked_name: str
    masked_number: str
    employer: str
    trade: str
    card_number: str | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    added_at: dt.datetime
    removed_at: dt.datetime | None
    removed_by: str | None
    version: int

    @property
    def expired(self) -> bool:
        return self.removed_at is not None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttendanceRow:
    """One person's day at the site (module docstring)."""

    person_key: str
    masked_name: str
    employer: str
    trade: str
    registered: bool
    first_in: dt.datetime | None
    last_out: dt.datetime | None
    minutes: int
    inside: bool

    @property
    def hours(self) -> str:
        """Hours and minutes as staff read them: "7:05"."""
        return f"{self.minutes // 60}:{self.minutes % 60:02d}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MusterRow:
    """One person on site now."""

    person_key: str
    masked_name: str
    employer: str
    trade: str
    registered: bool
    in_since: dt.datetime


_ROSTER_SQL: Final = """
    SELECT site_id, person_key, masked_name, masked_number, employer, trade, card_number,
           valid_from, valid_until, added_at, removed_at, removed_by, version
    FROM workers
    WHERE site_id = $1 AND ($2 OR removed_at IS NULL)
    ORDER BY removed_at IS NOT NULL, employer, trade, masked_name, person_key
"""


def _mask_card(card: str | None) -> str | None:
    if card is None:
        return None
    return "*" * max(0, len(card) - 4) + card[-4:]


async def roster(con: Connection, scope: Scope, params: RosterParams) -> tuple[WorkerRow, ...]:
    """The site's registrations (current first, by employer, trade and name); card numbers
    show their last four characters."""
    await require_site(con, scope, params.site_id, CONSTRUCTION)
    rows = await con.fetch(_ROSTER_SQL, params.site_id, params.include_expired)
    return tuple(
        WorkerRow(**{**dict(r), "card_number": _mask_card(r["card_number"])}) for r in rows
    )


# The passages that count ($1 site, $2 from, $3 until), one row each.
_COUNTED: Final = """
    SELECT s.person_key, s.ts, s.direction, s.masked_name
    FROM scans s
    WHERE s.site_id = $1 AND s.ts >= $2 AND s.ts <= $3
      AND s.verdict = 'allow' AND s.person_key IS NOT NULL AND s.direction IN ('in', 'out')
      AND NOT EXISTS (
          SELECT 1 FROM passages p
          WHERE p.gateway_id = s.gateway_id AND p.scan_seq = s.seq
            AND p.site_id = s.site_id AND p.journal_id = s.journal_id
            AND p.ts >= s.ts AND p.ts < s.ts + interval '1 day'
            AND p.outcome = 'not_passed'
      )
"""

# $4: where an open "in" stops counting (now, or the day's end).
_ATTENDANCE_SQL: Final = f"""
    WITH counted AS ({_COUNTED}),
    paired AS (
        SELECT person_key, ts, direction, masked_name,
               lead(ts) OVER w AS next_ts, lead(direction) OVER w AS next_direction
        FROM counted
        WINDOW w AS (PARTITION BY person_key ORDER BY ts)
    ),
    days AS (
        SELECT person_key,
               min(ts) FILTER (WHERE direction = 'in') AS first_in,
               max(ts) FILTER (WHERE direction = 'out') AS last_out,
               coalesce(sum(CASE
                   WHEN direction = 'in' AND next_direction = 'out' THEN next_ts - ts
                   WHEN direction = 'in' AND next_ts IS NULL THEN greatest($4 - ts, interval '0')
               END), interval '0') AS on_site,
               (array_agg(direction ORDER BY ts DESC))[1] = 'in' AS inside,
               (array_agg(masked_name ORDER BY ts DESC)
                   FILTER (WHERE masked_name IS NOT NULL))[1] AS scan_name
        FROM paired
        GROUP BY person_key
    ),
    current AS (
        SELECT person_key, masked_name, employer, trade FROM workers
        WHERE site_id = $1 AND removed_at IS NULL
    )
    SELECT coalesce(w.person_key, d.person_key) AS person_key,
           coalesce(nullif(w.masked_name, ''), d.scan_name, '') AS masked_name,
           coalesce(w.employer, '') AS employer, coalesce(w.trade, '') AS trade,
           w.person_key IS NOT NULL AS registered,
           d.first_in, d.last_out,
           (extract(epoch FROM coalesce(d.on_site, interval '0')) / 60)::int AS minutes,
           coalesce(d.inside, false) AS inside
    FROM current w FULL JOIN days d ON d.person_key = w.person_key
    ORDER BY w.person_key IS NULL, employer, trade, masked_name, person_key
"""  # noqa: S608 - constant text


async def attendance(
    con: Connection, scope: Scope, params: AttendanceParams
) -> tuple[AttendanceRow, ...]:
    """Each current worker's day (and anyone else who came in), by employer, trade, name."""
    site = await require_site(con, scope, params.site_id, CONSTRUCTION)
    now = await now_or_database(con, params.now)
    start, end = site.day_bounds(params.day or site.local_day(now))
    until = min(now, end)
    if until < start:
        return ()
    rows = await con.fetch(_ATTENDANCE_SQL, params.site_id, start, until, until)
    return tuple(AttendanceRow(**dict(r)) for r in rows)


_MUSTER_SQL: Final = f"""
    WITH counted AS ({_COUNTED}),
    latest AS (
        SELECT DISTINCT ON (person_key) person_key, ts, direction, masked_name
        FROM counted
        ORDER BY person_key, ts DESC
    )
    SELECT l.person_key,
           coalesce(nullif(w.masked_name, ''), l.masked_name, '') AS masked_name,
           coalesce(w.employer, '') AS employer, coalesce(w.trade, '') AS trade,
           w.person_key IS NOT NULL AS registered, l.ts AS in_since
    FROM latest l
    LEFT JOIN workers w
        ON w.site_id = $1 AND w.person_key = l.person_key AND w.removed_at IS NULL
    WHERE l.direction = 'in'
    ORDER BY employer, trade, masked_name, person_key
"""  # noqa: S608 - constant text


async def muster(con: Connection, scope: Scope, params: MusterParams) -> tuple[MusterRow, ...]:
    """Everyone on site now (module docstring), by employer, trade and name."""
    await require_site(con, scope, params.site_id, CONSTRUCTION)
    now = await now_or_database(con, params.now)
    since = now - dt.timedelta(hours=params.window_hours)
    rows = await con.fetch(_MUSTER_SQL, params.site_id, since, now)
    return tuple(MusterRow(**dict(r)) for r in rows)


def muster_groups(
    rows: tuple[MusterRow, ...],
) -> tuple[tuple[str, str, tuple[MusterRow, ...]], ...]:
    """The muster list by (employer, trade), in the rows' order: for the page's headings."""
    groups: dict[tuple[str, str], list[MusterRow]] = {}
    for row in rows:
        groups.setdefault((row.employer, row.trade), []).append(row)
    return tuple((e, t, tuple(people)) for (e, t), people in groups.items())


__all__ = [
    "AttendanceParams",
    "AttendanceRow",
    "MusterParams",
    "MusterRow",
    "RosterParams",
    "WorkerRow",
    "attendance",
    "muster",
    "muster_groups",
    "roster",
]
