"""Watchlist hits (DESIGN §7, issue 11): the watchlist alerts the gateways raised in
``[since, until)``, by list (level and route), by site and by day (UTC), each with its alert
outcome (``alerts.state``, the closed loop's latest step) and whether a deadline has passed.

A hit is an alert of kind ``watchlist``; its level and route are the list entry's at the time
of the scan (the gateway's bundle).  ``overdue``: still ``received`` after ``accept_by``, or not
yet handled (``handled``, ``fed_back`` or ``closed``) after ``handle_by``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.scope import Scope

__all__ = [
    "HitCount",
    "WatchlistHit",
    "WatchlistHits",
    "WatchlistHitsParams",
    "watchlist_hits",
]

DONE_STATES: Final = ("handled", "fed_back", "closed")


class WatchlistHitsParams(msgspec.Struct, frozen=True, kw_only=True):
    since: dt.datetime
    until: dt.datetime
    site_id: str | None = None
    level: str | None = None  # notify | deny
    route: str | None = None  # police | staff | ...
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    now: dt.datetime | None = None  # for 'overdue' (default: the clock)


class WatchlistHit(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: int
    ts: dt.datetime
    site_id: str
    lane_id: str | None
    person_key: str | None
    level: str | None
    route: str
    state: str
    overdue: bool


class HitCount(msgspec.Struct, frozen=True, kw_only=True):
    """Hits of one group (a list, a site or a day) and how many of them are in each state."""

    key: str
    hits: int
    states: dict[str, int]


class WatchlistHits(msgspec.Struct, frozen=True, kw_only=True):
    since: dt.datetime
    until: dt.datetime
    total: int
    hits: tuple[WatchlistHit, ...]  # newest first, at most ``limit``
    by_list: tuple[HitCount, ...]  # key "level/route"
    by_site: tuple[HitCount, ...]
    by_day: tuple[HitCount, ...]  # key YYYY-MM-DD (UTC)


_HITS = f"""
SELECT alert_id, ts, site_id, lane_id, person_key, level, route, state,
       (state = 'received' AND accept_by < $7)
       OR (state <> ALL($8::text[]) AND handle_by < $7) AS overdue
FROM alerts
WHERE kind = 'watchlist' AND ts >= $1 AND ts < $2 AND {Scope.sql("$3")}
  AND ($4::text IS NULL OR site_id = $4) AND ($5::text IS NULL OR level = $5)
  AND ($6::text IS NULL OR route = $6)
ORDER BY ts DESC, alert_id DESC
"""  # noqa: S608 - constants only


def _counts(groups: dict[str, dict[str, int]]) -> tuple[HitCount, ...]:
    return tuple(
        HitCount(key=k, hits=sum(states.values()), states=dict(sorted(states.items())))
        for k, states in sorted(groups.items())
    )


async def watchlist_hits(
    con: Connection, scope: Scope, params: WatchlistHitsParams
) -> WatchlistHits:
    """The hits and their summaries (see the module docstring)."""
    if params.since.tzinfo is None or params.until.tzinfo is None:
        raise BadRequest("since and until must carry a timezone")
    now = params.now or dt.datetime.now(dt.UTC)
    rows = await con.fetch(
        _HITS,
        params.since,
        params.until,
        scope.sql_param(),
        params.site_id,
        params.level,
        params.route,
        now,
        list(DONE_STATES),
    )
    by_list: dict[str, dict[str, int]] = {}
    by_site: dict[str, dict[str, int]] = {}
    by_day: dict[str, dict[str, int]] = {}
    for r in rows:
        for groups, k in (
            (by_list, f"{r['level'] or '-'}/{r['route']}"),
            (by_site, r["site_id"]),
            (by_day, r["ts"].astimezone(dt.UTC).date().isoformat()),
        ):
            states = groups.setdefault(k, {})
            states[r["state"]] = states.get(r["state"], 0) + 1
    return WatchlistHits(
        since=params.since,
        until=params.until,
        total=len(rows),
        hits=tuple(
            WatchlistHit(
                alert_id=r["alert_id"],
                ts=r["ts"],
                site_id=r["site_id"],
                lane_id=r["lane_id"],
                person_key=r["person_key"],
                level=r["level"],
                route=r["route"],
                state=r["state"],
                overdue=bool(r["overdue"]),
            )
            for r in rows[: params.limit]
        ),
        by_list=_counts(by_list),
        by_site=_counts(by_site),
        by_day=_counts(by_day),
    )
