"""Anomalies (DESIGN §7, issue 11) in ``[since, until)``:

- impossible travel: one code (``cti``) or one person (``person_key``) scanned at two sites
  one after the other faster than ``max_speed_kmh`` allows between them (great-circle
  distance between the sites' coordinates; sites without coordinates are never compared).
  Only scans at sites in scope are read, so a site manager sees pairs of their own sites;
  consecutive means consecutive among those;
- denied bursts: at one lane, at least ``burst_count`` denied scans within
  ``burst_minutes``; overlapping windows merge into one burst (first and last denied scan,
  how many, the most frequent reasons).
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Annotated

import msgspec

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.scope import Scope

__all__ = [
    "AnomaliesParams",
    "AnomalyReport",
    "DeniedBurst",
    "TravelAnomaly",
    "anomalies",
]


class AnomaliesParams(msgspec.Struct, frozen=True, kw_only=True):
    since: dt.datetime
    until: dt.datetime
    max_speed_kmh: Annotated[float, msgspec.Meta(gt=0)] = 150.0
    burst_count: Annotated[int, msgspec.Meta(ge=2)] = 10
    burst_minutes: Annotated[float, msgspec.Meta(gt=0)] = 5.0


class TravelAnomaly(msgspec.Struct, frozen=True, kw_only=True):
    by: str  # "code" or "person"
    identity: str  # the cti or the person key
    from_site_id: str
    from_ts: dt.datetime
    to_site_id: str
    to_ts: dt.datetime
    distance_km: float
    speed_kmh: float | None  # None: the same instant


class DeniedBurst(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    lane_id: str
    first_ts: dt.datetime
    last_ts: dt.datetime
    denied: int
    reasons: dict[str, int]


class AnomalyReport(msgspec.Struct, frozen=True, kw_only=True):
    travel: tuple[TravelAnomaly, ...]
    bursts: tuple[DeniedBurst, ...]


_TRAVEL = """
WITH s AS (
    SELECT sc.{column} AS identity, sc.ts, sc.site_id, st.lat, st.lon,
           lag(sc.ts) OVER w AS prev_ts, lag(sc.site_id) OVER w AS prev_site,
           lag(st.lat) OVER w AS prev_lat, lag(st.lon) OVER w AS prev_lon
    FROM scans sc JOIN sites st ON st.site_id = sc.site_id
    WHERE sc.{column} IS NOT NULL AND sc.ts >= $1 AND sc.ts < $2 AND {scope}
    WINDOW w AS (PARTITION BY sc.{column} ORDER BY sc.ts)
), d AS (
    SELECT *, 2 * 6371.0 * asin(sqrt(
        power(sin(radians(lat - prev_lat) / 2), 2)
        + cos(radians(lat)) * cos(radians(prev_lat)) * power(sin(radians(lon - prev_lon) / 2), 2)
    )) AS km, extract(epoch FROM ts - prev_ts) / 3600.0 AS hours
    FROM s
    WHERE prev_site IS NOT NULL AND prev_site <> site_id
      AND lat IS NOT NULL AND prev_lat IS NOT NULL
)
SELECT identity, prev_site, prev_ts, site_id, ts, km, hours FROM d
WHERE km > $4 * hours
ORDER BY ts, identity
"""

_DENIED = f"""
SELECT site_id, lane_id, ts, coalesce(reason, '') AS reason FROM scans
WHERE verdict = 'deny' AND ts >= $1 AND ts < $2 AND {Scope.sql("$3")}
ORDER BY site_id, lane_id, ts
"""  # noqa: S608 - constants only


async def _travel(con: Connection, scope: Scope, params: AnomaliesParams) -> list[TravelAnomaly]:
    found = []
    for by, column in (("code", "cti"), ("person", "person_key")):
        sql = _TRAVEL.format(column=column, scope=Scope.sql("$3", "sc.site_id"))
        for r in await con.fetch(
            sql, params.since, params.until, scope.sql_param(), params.max_speed_kmh
        ):
            hours = float(r["hours"])
            found.append(
                TravelAnomaly(
                    by=by,
                    identity=r["identity"],
                    from_site_id=r["prev_site"],
                    from_ts=r["prev_ts"],
                    to_site_id=r["site_id"],
                    to_ts=r["ts"],
                    distance_km=round(float(r["km"]), 3),
                    speed_kmh=round(float(r["km"]) / hours, 1) if hours > 0 else None,
                )
            )
    return sorted(found, key=lambda t: (t.to_ts, t.by, t.identity))


def _bursts(
    rows: list[tuple[str, str, dt.datetime, str]], params: AnomaliesParams
) -> list[DeniedBurst]:
    span = dt.timedelta(minutes=params.burst_minutes)
    by_lane: dict[tuple[str, str], list[tuple[dt.datetime, str]]] = {}
    for site_id, lane_id, ts, reason in rows:
        by_lane.setdefault((site_id, lane_id), []).append((ts, reason))
    bursts = []
    for (site_id, lane_id), scans in by_lane.items():
        n = params.burst_count
        current: tuple[int, int] | None = None  # [first, last] index of the merged burst
        merged: list[tuple[int, int]] = []
        for last in range(n - 1, len(scans)):
            first = last - n + 1
            if scans[last][0] - scans[first][0] <= span:
                if current is not None and first <= current[1]:
                    current = (current[0], last)
                else:
                    if current is not None:
                        merged.append(current)
                    current = (first, last)
        if current is not None:
            merged.append(current)
        for first, last in merged:
            reasons = collections.Counter(reason for _ts, reason in scans[first : last + 1])
            bursts.append(
                DeniedBurst(
                    site_id=site_id,
                    lane_id=lane_id,
                    first_ts=scans[first][0],
                    last_ts=scans[last][0],
                    denied=last - first + 1,
                    reasons=dict(reasons.most_common(5)),
                )
            )
    return sorted(bursts, key=lambda b: (b.first_ts, b.site_id, b.lane_id))


async def anomalies(con: Connection, scope: Scope, params: AnomaliesParams) -> AnomalyReport:
    """Impossible travel and denied bursts (see the module docstring)."""
    if params.since.tzinfo is None or params.until.tzinfo is None:
        raise BadRequest("since and until must carry a timezone")
    denied = [
        (r["site_id"], r["lane_id"], r["ts"], r["reason"])
        for r in await con.fetch(_DENIED, params.since, params.until, scope.sql_param())
    ]
    return AnomalyReport(
        travel=tuple(await _travel(con, scope, params)),
        bursts=tuple(_bursts(denied, params)),
    )
