"""Crowds (DESIGN §7): occupancy over time per site or district, its peaks and capacity
breaches, and occupancy now.

A person is inside from their visit's in to its end (the out or close time; an open visit ends
at ``least(close_by, now)``), half-open: someone leaving at 10:00 and someone entering at 10:00
are never both counted at 10:00.  ``crowd`` buckets ``[since, until)`` into ``bucket_minutes``
buckets; each bucket gives the occupancy at its start, its peak (the most people inside at once
during the bucket) and its entries.  A breach is a bucket whose peak is above the capacity
(soft and hard, from the sites table; a district's capacity is the sum of its sites', absent
when any site has none).  ``occupancy`` counts the people inside one site at one moment
(default now), by zone.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec

from suishen.central import derive
from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.scope import Scope

__all__ = [
    "CrowdBucket",
    "CrowdParams",
    "CrowdSeries",
    "Occupancy",
    "OccupancyParams",
    "ZoneCount",
    "crowd",
    "occupancy",
]

MAX_BUCKETS: Final = 10_000


class CrowdParams(msgspec.Struct, frozen=True, kw_only=True):
    """One site or one district (exactly one), a period and a bucket size."""

    site_id: str | None = None
    district: str | None = None
    since: dt.datetime
    until: dt.datetime
    bucket_minutes: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 60


class CrowdBucket(msgspec.Struct, frozen=True, kw_only=True):
    start: dt.datetime
    occupancy: int  # inside at the bucket's start
    peak: int
    entries: int
    over_soft: bool
    over_hard: bool


class CrowdSeries(msgspec.Struct, frozen=True, kw_only=True):
    site_ids: tuple[str, ...]
    capacity_soft: int | None
    capacity_hard: int | None
    peak: int
    peak_at: dt.datetime | None
    soft_breaches: int  # buckets over the soft capacity
    hard_breaches: int
    buckets: tuple[CrowdBucket, ...]


class OccupancyParams(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    at: dt.datetime | None = None  # default: now


class ZoneCount(msgspec.Struct, frozen=True, kw_only=True):
    zone: str
    inside: int


class Occupancy(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    at: dt.datetime
    inside: int
    capacity_soft: int | None
    capacity_hard: int | None
    zones: tuple[ZoneCount, ...]


_SITES = f"""
SELECT site_id, capacity_soft, capacity_hard FROM sites
WHERE (site_id = $1 OR district = $2) AND {Scope.sql("$3")}
ORDER BY site_id
"""  # noqa: S608 - constants only

_END = "coalesce(out_ts, least(close_by, $5))"

_VISITS = f"""
SELECT in_ts, {_END} AS end_ts FROM visits
WHERE site_id = ANY($1::text[]) AND in_ts < $3 AND in_ts >= $2::timestamptz - $4::interval
  AND {_END} > $2
"""  # noqa: S608 - constants only

_OCCUPANCY = """
SELECT zone, count(*) AS inside FROM visits
WHERE site_id = $1 AND in_ts <= $2 AND in_ts > $2::timestamptz - $3::interval
  AND coalesce(out_ts, close_by) > $2
GROUP BY zone ORDER BY zone
"""


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise BadRequest(f"{name} must carry a timezone")
    return value


async def _sites(
    con: Connection, scope: Scope, site_id: str | None, district: str | None
) -> tuple[list[str], int | None, int | None]:
    if (site_id is None) == (district is None):
        raise BadRequest("give a site_id or a district (one of them)")
    rows = await con.fetch(_SITES, site_id, district, scope.sql_param())
    if not rows:
        raise NotFound(f"no site {site_id!r}" if site_id else f"no district {district!r}")
    softs = [r["capacity_soft"] for r in rows]
    hards = [r["capacity_hard"] for r in rows]
    soft = None if None in softs else sum(softs)
    hard = None if None in hards else sum(hards)
    return [r["site_id"] for r in rows], soft, hard


async def crowd(con: Connection, scope: Scope, params: CrowdParams) -> CrowdSeries:
    """The occupancy series of a site or district (see the module docstring)."""
    since, until = _aware(params.since, "since"), _aware(params.until, "until")
    width = dt.timedelta(minutes=params.bucket_minutes)
    count = -(-(until - since) // width) if until > since else 0
    if count > MAX_BUCKETS:
        raise BadRequest(f"at most {MAX_BUCKETS} buckets; widen bucket_minutes")
    site_ids, soft, hard = await _sites(con, scope, params.site_id, params.district)
    now = dt.datetime.now(dt.UTC)
    rows = await con.fetch(_VISITS, site_ids, since, until, derive.settings().max_visit, now)
    events = sorted(
        [(r["in_ts"], 1) for r in rows] + [(r["end_ts"], -1) for r in rows],
        key=lambda e: (e[0], e[1]),  # at one instant, leaving before entering
    )
    inside = 0
    position = 0
    buckets = []
    for n in range(count):
        start = since + n * width
        end = min(start + width, until)
        entries = 0
        while position < len(events) and events[position][0] <= start:
            inside += events[position][1]
            entries += events[position][1] > 0 and events[position][0] == start
            position += 1
        at_start = peak = inside
        while position < len(events) and events[position][0] < end:
            inside += events[position][1]
            entries += events[position][1] > 0
            peak = max(peak, inside)
            position += 1
        buckets.append(
            CrowdBucket(
                start=start,
                occupancy=at_start,
                peak=peak,
                entries=entries,
                over_soft=soft is not None and peak > soft,
                over_hard=hard is not None and peak > hard,
            )
        )
    top = max(buckets, key=lambda b: b.peak, default=None)
    return CrowdSeries(
        site_ids=tuple(site_ids),
        capacity_soft=soft,
        capacity_hard=hard,
        peak=top.peak if top else 0,
        peak_at=top.start if top else None,
        soft_breaches=sum(b.over_soft for b in buckets),
        hard_breaches=sum(b.over_hard for b in buckets),
        buckets=tuple(buckets),
    )


async def occupancy(con: Connection, scope: Scope, params: OccupancyParams) -> Occupancy:
    """How many people are inside one site at ``at`` (default now), by zone."""
    at = dt.datetime.now(dt.UTC) if params.at is None else _aware(params.at, "at")
    site_ids, soft, hard = await _sites(con, scope, scope.require(params.site_id), None)
    rows = await con.fetch(_OCCUPANCY, site_ids[0], at, derive.settings().max_visit)
    zones = tuple(ZoneCount(zone=r["zone"], inside=r["inside"]) for r in rows)
    return Occupancy(
        site_id=site_ids[0],
        at=at,
        inside=sum(z.inside for z in zones),
        capacity_soft=soft,
        capacity_hard=hard,
        zones=zones,
    )
