"""Contact tracing (DESIGN §7): an index person's visits in a window and everyone whose visit at
the same site overlapped one of them by at least a margin, ranked by overlap; second degree on
request.

Definitions (the tests build data on these bounds):

- window: the index person's visits whose in lies in ``[until - days, until)``;
- a visit's end: its out (or close) time; an open visit ends at ``least(close_by, until)``;
- overlap of two visits at one site: ``least(end1, end2) - greatest(in1, in2)``; a pair counts
  when the overlap is at least ``margin_minutes`` (equal counts); a contact's rank is the sum
  of the overlaps of the pairs that count, largest first (then by person key);
- second degree: the same from each first-degree contact's visits in the window, excluding the
  index person and the first-degree contacts; each second-degree person is listed once, through
  the first-degree contact they overlapped most with (``via_person_key``).

Rows carry person keys and masked values only (the latest masked name and number the scans
hold for that person in the window).  A person is given by key; ``person_key_for`` turns a
document into the key with the deployment pepper (the front doors hold the pepper).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec

from suishen.central import derive
from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.scope import Scope
from suishen.protocol import person

__all__ = [
    "TraceContact",
    "TraceParams",
    "TraceResult",
    "TraceVisit",
    "person_key_for",
    "trace",
]

PersonKey = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", description="a person key")]
DEFAULT_DAYS: Final = 14
DEFAULT_MARGIN_MINUTES: Final = 15.0


class TraceParams(msgspec.Struct, frozen=True, kw_only=True):
    """Who to trace, over which window, with which margin."""

    person_key: PersonKey
    until: dt.datetime | None = None  # end of the window (default: now)
    days: Annotated[int, msgspec.Meta(ge=1, le=28)] = DEFAULT_DAYS
    margin_minutes: Annotated[float, msgspec.Meta(ge=0, le=24 * 60)] = DEFAULT_MARGIN_MINUTES
    second_degree: bool = False
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000


class TraceVisit(msgspec.Struct, frozen=True, kw_only=True):
    """One visit of the index person."""

    site_id: str
    zone: str
    in_ts: dt.datetime
    end_ts: dt.datetime
    close_reason: str | None  # None: still open


class TraceContact(msgspec.Struct, frozen=True, kw_only=True):
    """One contact, first or second degree."""

    person_key: str
    degree: int
    via_person_key: str | None  # second degree: the first-degree contact they met
    overlap_minutes: float
    visits: int  # overlapping visit pairs that counted
    site_ids: tuple[str, ...]
    first_contact_ts: dt.datetime
    masked_name: str | None
    masked_number: str | None


class TraceResult(msgspec.Struct, frozen=True, kw_only=True):
    person_key: str
    since: dt.datetime
    until: dt.datetime
    margin_minutes: float
    visits: tuple[TraceVisit, ...]
    contacts: tuple[TraceContact, ...]


def person_key_for(
    pepper: bytes, *, document_type: str, document_number: str, nationality: str | None = None
) -> str:
    """The person key of a document (RIC, PP + nationality, HMT, FPR) under the deployment's
    pepper; BadRequest when the document cannot name a person."""
    try:
        return person.person_key(pepper, document_type, document_number, nationality)
    except ValueError as exc:
        raise BadRequest(f"not a document: {exc}") from None


_END = "coalesce({v}.out_ts, least({v}.close_by, $3))"

_INDEX_VISITS = f"""
SELECT site_id, zone, in_ts, {_END.format(v="visits")} AS end_ts, close_reason
FROM visits
WHERE person_key = $1 AND in_ts >= $2 AND in_ts < $3 AND {Scope.sql("$4")}
ORDER BY in_ts
"""  # noqa: S608 - constants only

# Overlapping visit pairs of the persons $1 (their visits with in in [$2, $3)) with anybody not
# in $6, per (via, contact): the sum of the overlaps of at least $5, pairs, sites, first time.
_CONTACTS = f"""
WITH idx AS (
    SELECT person_key, site_id, in_ts, {_END.format(v="visits")} AS end_ts
    FROM visits
    WHERE person_key = ANY($1::text[]) AND in_ts >= $2 AND in_ts < $3 AND {Scope.sql("$4")}
), pairs AS (
    SELECT i.person_key AS via, v.person_key, v.site_id,
           greatest(i.in_ts, v.in_ts) AS from_ts,
           least(i.end_ts, {_END.format(v="v")}) - greatest(i.in_ts, v.in_ts) AS overlap
    FROM idx i
    JOIN visits v ON v.site_id = i.site_id AND v.in_ts < i.end_ts
                 AND v.in_ts >= i.in_ts - $7::interval
    WHERE v.person_key <> ALL($6::text[])
)
SELECT via, person_key, extract(epoch FROM sum(overlap)) / 60.0 AS minutes, count(*) AS n,
       array_agg(DISTINCT site_id ORDER BY site_id) AS site_ids, min(from_ts) AS first_ts
FROM pairs
WHERE overlap >= $5::interval
GROUP BY via, person_key
"""  # noqa: S608 - constants only

_MASKED = """
SELECT u.k AS person_key, m.masked_name, m.masked_number
FROM unnest($1::text[]) AS u(k)
LEFT JOIN LATERAL (
    SELECT masked_name, masked_number FROM scans
    WHERE person_key = u.k AND ts >= $2 AND ts < $3 AND masked_name IS NOT NULL
    ORDER BY ts DESC LIMIT 1
) AS m ON true
"""


def _window(params: TraceParams) -> tuple[dt.datetime, dt.datetime]:
    until = params.until or dt.datetime.now(dt.UTC)
    if until.tzinfo is None:
        raise BadRequest("until must carry a timezone")
    return until - dt.timedelta(days=params.days), until


async def _contacts(
    con: Connection,
    scope: Scope,
    *,
    persons: list[str],
    excluded: list[str],
    since: dt.datetime,
    until: dt.datetime,
    margin: dt.timedelta,
) -> list[tuple[str, str, float, int, tuple[str, ...], dt.datetime]]:
    rows = await con.fetch(
        _CONTACTS,
        persons,
        since,
        until,
        scope.sql_param(),
        margin,
        excluded,
        derive.settings().max_visit,
    )
    return [
        (
            r["via"],
            r["person_key"],
            float(r["minutes"]),
            r["n"],
            tuple(r["site_ids"]),
            r["first_ts"],
        )
        for r in rows
    ]


async def trace(con: Connection, scope: Scope, params: TraceParams) -> TraceResult:
    """The index person's visits and contacts (see the module docstring)."""
    since, until = _window(params)
    margin = dt.timedelta(minutes=params.margin_minutes)
    visits = tuple(
        TraceVisit(
            site_id=r["site_id"],
            zone=r["zone"],
            in_ts=r["in_ts"],
            end_ts=r["end_ts"],
            close_reason=r["close_reason"],
        )
        for r in await con.fetch(_INDEX_VISITS, params.person_key, since, until, scope.sql_param())
    )
    index = params.person_key
    first = await _contacts(
        con, scope, persons=[index], excluded=[index], since=since, until=until, margin=margin
    )
    first.sort(key=lambda c: (-c[2], c[1]))
    first = first[: params.limit]
    found: list[tuple[int, tuple[str, str, float, int, tuple[str, ...], dt.datetime]]] = [
        (1, c) for c in first
    ]
    if params.second_degree and first:
        keys = [c[1] for c in first]
        best: dict[str, tuple[str, str, float, int, tuple[str, ...], dt.datetime]] = {}
        for c in await _contacts(
            con,
            scope,
            persons=keys,
            excluded=[index, *keys],
            since=since,
            until=until,
            margin=margin,
        ):
            held = best.get(c[1])
            if held is None or (c[2], held[0]) > (held[2], c[0]):
                best[c[1]] = c
        second = sorted(best.values(), key=lambda c: (-c[2], c[1]))[: params.limit]
        found.extend((2, c) for c in second)
    masked = {
        r["person_key"]: (r["masked_name"], r["masked_number"])
        for r in await con.fetch(_MASKED, [c[1] for _d, c in found], since, until)
    }
    contacts = tuple(
        TraceContact(
            person_key=key,
            degree=degree,
            via_person_key=None if degree == 1 else via,
            overlap_minutes=round(minutes, 3),
            visits=n,
            site_ids=site_ids,
            first_contact_ts=first_ts,
            masked_name=masked.get(key, (None, None))[0],
            masked_number=masked.get(key, (None, None))[1],
        )
        for degree, (via, key, minutes, n, site_ids, first_ts) in found
    )
    return TraceResult(
        person_key=index,
        since=since,
        until=until,
        margin_minutes=params.margin_minutes,
        visits=visits,
        contacts=contacts,
    )
