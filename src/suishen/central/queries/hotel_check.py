"""The weekly data check of a hotel (DESIGN §7, issue 11): stays against entrance scans,
guests with no registration, watched persons staying, minors under 16 without a guardian in
the stay, foreign guests not reported within 24 hours.

Definitions, for a hotel and the week ``[week_start, week_start + 7 days)``:

- a stay is in the week when it overlaps it (checkin before the week's end, end after its
  start; an open stay ends at ``least(close_by, now)``);
- ``entering``: the distinct persons with an allowed "in" scan at the hotel in the week;
- ``unregistered``: entering persons with an in scan that no stay of theirs at the hotel covers,
  where a stay covers a scan at ``ts`` when ``checkin_ts <= ts + grace`` (registering at the
  desk after walking in: ``grace_minutes``, default 120) and its end is at or after ``ts``;
  listed once per person with their first such scan;
- ``watched_staying``: stays in the week of a person on the watchlist (not removed, not
  expired at the checkin);
- ``minors_unaccompanied``: stays in the week with ``minor`` whose ``guardian_person_key`` is
  empty or has no stay at the hotel overlapping the minor's;
- ``foreign_unreported``: stays with checkin in the week of a guest whose nationality is not
  CHN, not reported (``reported_at``) within 24 hours of the checkin: reported late, or not
  reported and 24 hours have passed at ``now``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.scope import Scope

__all__ = ["HotelCheck", "HotelCheckParams", "HotelFlag", "hotel_check"]

WEEK: Final = dt.timedelta(days=7)
REPORT_WITHIN: Final = dt.timedelta(hours=24)
HOME_NATIONALITY: Final = "CHN"


class HotelCheckParams(msgspec.Struct, frozen=True, kw_only=True):
    """One hotel (or every hotel in scope) and the week starting at ``week_start``."""

    site_id: str | None = None
    week_start: dt.datetime
    grace_minutes: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] = 120
    now: dt.datetime | None = None  # default: the clock


class HotelFlag(msgspec.Struct, frozen=True, kw_only=True):
    """One person flagged by a check, with the time of the record that flagged them."""

    person_key: str
    ts: dt.datetime
    nationality: str | None = None
    reported_at: dt.datetime | None = None


class HotelCheck(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    week_start: dt.datetime
    week_end: dt.datetime
    stays: int
    entering: int
    unregistered: tuple[HotelFlag, ...]
    watched_staying: tuple[HotelFlag, ...]
    minors_unaccompanied: tuple[HotelFlag, ...]
    foreign_unreported: tuple[HotelFlag, ...]


_HOTELS = f"""
SELECT site_id FROM sites WHERE kind = 'hotel' AND ($1::text IS NULL OR site_id = $1)
  AND {Scope.sql("$2")} ORDER BY site_id
"""  # noqa: S608 - constants only

_END = "coalesce({s}.checkout_ts, least({s}.close_by, $4))"

# Stays in the week: checkin before the end; a stay is at most the longest stay long, but the
# table is partitioned by checkin_ts and stays are few: bound by 60 days for pruning.
_STAYS = f"""
SELECT person_key, checkin_ts, {_END.format(s="s")} AS end_ts, minor, guardian_person_key,
       nationality, reported_at
FROM stays s
WHERE site_id = $1 AND checkin_ts < $3 AND checkin_ts >= $2::timestamptz - interval '60 days'
  AND {_END.format(s="s")} > $2
"""  # noqa: S608 - constants only

_ENTERING = """
SELECT person_key, min(ts) AS first_ts, array_agg(ts ORDER BY ts) AS times FROM scans
WHERE site_id = $1 AND ts >= $2 AND ts < $3 AND verdict = 'allow' AND direction = 'in'
  AND person_key IS NOT NULL
GROUP BY person_key
"""

_WATCHED = """
SELECT person_key, expires_at FROM watchlist
WHERE person_key = ANY($1::text[]) AND removed_at IS NULL
"""


async def _check(
    con: Connection, site_id: str, start: dt.datetime, grace: dt.timedelta, now: dt.datetime
) -> HotelCheck:
    end = start + WEEK
    # up to the week's end + grace: a stay registered just after an entry in the week covers it
    fetched = await con.fetch(_STAYS, site_id, start, end + grace, now)
    stays = [s for s in fetched if s["checkin_ts"] < end]
    by_person: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for s in fetched:
        by_person.setdefault(s["person_key"], []).append((s["checkin_ts"], s["end_ts"]))
    entering = await con.fetch(_ENTERING, site_id, start, end)
    unregistered = []
    for e in entering:
        spans = by_person.get(e["person_key"], [])
        for ts in e["times"]:
            if not any(checkin <= ts + grace and stay_end >= ts for checkin, stay_end in spans):
                unregistered.append(HotelFlag(person_key=e["person_key"], ts=ts))
                break
    watched = {
        r["person_key"]: r["expires_at"] for r in await con.fetch(_WATCHED, sorted(by_person))
    }
    watched_staying = [
        HotelFlag(person_key=s["person_key"], ts=s["checkin_ts"])
        for s in stays
        if s["person_key"] in watched
        and (watched[s["person_key"]] is None or watched[s["person_key"]] > s["checkin_ts"])
    ]
    minors = []
    for s in stays:
        if not s["minor"]:
            continue
        guardian = s["guardian_person_key"]
        with_guardian = guardian is not None and any(
            checkin < s["end_ts"] and stay_end > s["checkin_ts"]
            for checkin, stay_end in by_person.get(guardian, [])
        )
        if not with_guardian:
            minors.append(HotelFlag(person_key=s["person_key"], ts=s["checkin_ts"]))
    foreign = [
        HotelFlag(
            person_key=s["person_key"],
            ts=s["checkin_ts"],
            nationality=s["nationality"],
            reported_at=s["reported_at"],
        )
        for s in stays
        if start <= s["checkin_ts"] < end
        and s["nationality"] not in (None, HOME_NATIONALITY)
        and (s["reported_at"] or now) > s["checkin_ts"] + REPORT_WITHIN
    ]

    def ordered(flags: list[HotelFlag]) -> tuple[HotelFlag, ...]:
        return tuple(sorted(flags, key=lambda f: (f.ts, f.person_key)))

    return HotelCheck(
        site_id=site_id,
        week_start=start,
        week_end=end,
        stays=sum(1 for s in stays if s["checkin_ts"] >= start),
        entering=len(entering),
        unregistered=ordered(unregistered),
        watched_staying=ordered(watched_staying),
        minors_unaccompanied=ordered(minors),
        foreign_unreported=ordered(foreign),
    )


async def hotel_check(
    con: Connection, scope: Scope, params: HotelCheckParams
) -> tuple[HotelCheck, ...]:
    """The week's check of each hotel in scope (or of ``site_id``; an unknown or out-of-scope
    hotel gives no row)."""
    if params.week_start.tzinfo is None:
        raise BadRequest("week_start must carry a timezone")
    now = params.now or dt.datetime.now(dt.UTC)
    grace = dt.timedelta(minutes=params.grace_minutes)
    hotels = [r["site_id"] for r in await con.fetch(_HOTELS, params.site_id, scope.sql_param())]
    return tuple([await _check(con, h, params.week_start, grace, now) for h in hotels])
