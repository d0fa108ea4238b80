"""Construction sites (DESIGN §7, issue 11): attendance per worker and per employer, hours on
site, and unregistered attempts, over ``[since, until)``.

- a worker's visits are those overlapping the period at a construction site, each clipped to
  it for the hours; ``days`` counts the distinct dates (site timezone) of their ins;
  ``registered`` says whether the person is on the site's roster (workers table, not removed);
  an unregistered person let in anyway is listed with employer '';
- employers: the workers' rows summed per (site, employer);
- unregistered attempts: denied scans with reason ``not_registered`` in the period, per person
  (code without a person key: one row with person_key None).
"""

from __future__ import annotations

import datetime as dt

import msgspec

from suishen.central import derive
from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.scope import Scope

__all__ = [
    "ConstructionParams",
    "ConstructionReport",
    "EmployerAttendance",
    "UnregisteredAttempts",
    "WorkerAttendance",
    "construction",
]


class ConstructionParams(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str | None = None  # None: every construction site in scope
    since: dt.datetime
    until: dt.datetime


class WorkerAttendance(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    person_key: str
    employer: str
    registered: bool
    masked_name: str | None
    masked_number: str | None
    visits: int
    days: int
    hours: float
    first_in: dt.datetime
    last_out: dt.datetime


class EmployerAttendance(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    employer: str
    workers: int
    worker_days: int
    hours: float


class UnregisteredAttempts(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    person_key: str | None
    masked_name: str | None
    attempts: int
    first_ts: dt.datetime
    last_ts: dt.datetime


class ConstructionReport(msgspec.Struct, frozen=True, kw_only=True):
    since: dt.datetime
    until: dt.datetime
    workers: tuple[WorkerAttendance, ...]
    employers: tuple[EmployerAttendance, ...]
    unregistered: tuple[UnregisteredAttempts, ...]


_END = "coalesce(v.out_ts, least(v.close_by, $5))"

_ATTENDANCE = f"""
WITH v AS (
    SELECT v.site_id, v.person_key, v.in_ts, {_END} AS end_ts, s.timezone
    FROM visits v JOIN sites s ON s.site_id = v.site_id
    WHERE s.kind = 'construction' AND ($1::text IS NULL OR v.site_id = $1)
      AND {Scope.sql("$4", "v.site_id")}
      AND v.in_ts < $3 AND v.in_ts >= $2::timestamptz - $6::interval AND {_END} > $2
)
SELECT v.site_id, v.person_key, coalesce(w.employer, '') AS employer,
       w.person_key IS NOT NULL AS registered, w.masked_name, w.masked_number,
       count(*) AS visits, count(DISTINCT (v.in_ts AT TIME ZONE v.timezone)::date) AS days,
       extract(epoch FROM sum(least(v.end_ts, $3) - greatest(v.in_ts, $2))) / 3600.0 AS hours,
       min(v.in_ts) AS first_in, max(v.end_ts) AS last_out
FROM v LEFT JOIN workers w
  ON w.site_id = v.site_id AND w.person_key = v.person_key AND w.removed_at IS NULL
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 1, 3, 2
"""  # noqa: S608 - constants only

_UNREGISTERED = f"""
SELECT sc.site_id, sc.person_key, max(sc.masked_name) AS masked_name, count(*) AS attempts,
       min(sc.ts) AS first_ts, max(sc.ts) AS last_ts
FROM scans sc JOIN sites s ON s.site_id = sc.site_id
WHERE s.kind = 'construction' AND ($1::text IS NULL OR sc.site_id = $1)
  AND {Scope.sql("$4", "sc.site_id")}
  AND sc.ts >= $2 AND sc.ts < $3 AND sc.verdict = 'deny' AND sc.reason = 'not_registered'
GROUP BY 1, 2
ORDER BY 1, count(*) DESC, 2
"""  # noqa: S608 - constants only


async def construction(
    con: Connection, scope: Scope, params: ConstructionParams
) -> ConstructionReport:
    """Attendance, hours and unregistered attempts (see the module docstring)."""
    if params.since.tzinfo is None or params.until.tzinfo is None:
        raise BadRequest("since and until must carry a timezone")
    now = dt.datetime.now(dt.UTC)
    args = (params.site_id, params.since, params.until, scope.sql_param())
    workers = tuple(
        WorkerAttendance(
            site_id=r["site_id"],
            person_key=r["person_key"],
            employer=r["employer"],
            registered=r["registered"],
            masked_name=r["masked_name"],
            masked_number=r["masked_number"],
            visits=r["visits"],
            days=r["days"],
            hours=round(float(r["hours"]), 4),
            first_in=r["first_in"],
            last_out=r["last_out"],
        )
        for r in await con.fetch(_ATTENDANCE, *args, now, derive.settings().max_visit)
    )
    employers: dict[tuple[str, str], list[WorkerAttendance]] = {}
    for w in workers:
        employers.setdefault((w.site_id, w.employer), []).append(w)
    unregistered = tuple(
        UnregisteredAttempts(
            site_id=r["site_id"],
            person_key=r["person_key"],
            masked_name=r["masked_name"],
            attempts=r["attempts"],
            first_ts=r["first_ts"],
            last_ts=r["last_ts"],
        )
        for r in await con.fetch(_UNREGISTERED, *args)
    )
    return ConstructionReport(
        since=params.since,
        until=params.until,
        workers=workers,
        employers=tuple(
            EmployerAttendance(
                site_id=site_id,
                employer=employer,
                workers=len(rows),
                worker_days=sum(w.days for w in rows),
                hours=round(sum(w.hours for w in rows), 4),
            )
            for (site_id, employer), rows in sorted(employers.items())
        ),
        unregistered=unregistered,
    )
