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

Rows carry person keys and masked values only (the masked name and number of a contact's
visit, taken from its in scan by the derivation, read from the covering index).  A person is
given by key; ``person_key_for`` turns a document into the key with the deployment pepper
(the front doors hold the pepper).
"""

from __future__ import annotations

import dataclasses
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
    SELECT i.person_key AS via, v.person_key, v.site_id, v.masked_name, v.masked_number,
           greatest(i.in_ts, v.in_ts) AS from_ts,
           least(i.end_ts, {_END.format(v="v")}) - greatest(i.in_ts, v.in_ts) AS overlap
    FROM idx i
    JOIN visits v ON v.site_id = i.site_id AND v.in_ts < i.end_ts
                 AND v.in_ts >= i.in_ts - $7::interval
    WHERE v.person_key <> ALL($6::text[])
)
SELECT via, person_key, extract(epoch FROM sum(overlap)) / 60.0 AS minutes, count(*) AS n,
       array_agg(DISTINCT site_id ORDER BY site_id) AS site_ids, min(from_ts) AS first_ts,
       max(masked_name) AS masked_name, max(masked_number) AS masked_number
FROM pairs
WHERE overlap >= $5::interval
GROUP BY via, person_key
"""  # noqa: S608 - constants only


def _window(params: TraceParams) -> tuple[dt.datetime, dt.datetime]:
    until = params.until or dt.datetime.now(dt.UTC)
    if until.tzinfo is None:
        raise BadRequest("until must carry a timezone")
    return until - dt.timedelta(days=params.days), until


@dataclasses.dataclass(frozen=True, slots=True)
class _Found:
    via: str
    person_key: str
    minutes: float
    visits: int
    site_ids: tuple[str, ...]
    first_ts: dt.datetime
    masked_name: str | None
    masked_number: str | None


async def _contacts(
    con: Connection,
    scope: Scope,
    *,
    persons: list[str],
    excluded: list[str],
    since: dt.datetime,
    until: dt.datetime,
    margin: dt.timedelta,
) -> list[_Found]:
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
        _Found(
            r["via"],
            r["person_key"],
            float(r["minutes"]),
            r["n"],
            tuple(r["site_ids"]),
            r["first_ts"],
            r["masked_name"],
            r["masked_number"],
        )
        for r in rows
    ]


def _ranked(found: list[_Found], limit: int) -> list[_Found]:
    return sorted(found, key=lambda c: (-c.minutes, c.person_key))[:limit]


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
    first = _ranked(
        await _contacts(
            con, scope, persons=[index], excluded=[index], since=since, until=until, margin=margin
        ),
        params.limit,
    )
    found = [(1, c) for c in first]
    if params.second_degree and first:
        keys = [c.person_key for c in first]
        best: dict[str, _Found] = {}
        for c in await _contacts(
            con,
            scope,
            persons=keys,
            excluded=[index, *keys],
            since=since,
            until=until,
            margin=margin,
        ):
            held = best.get(c.person_key)
            # through the first-degree contact met longest (on a tie, the smaller key)
            if held is None or (c.minutes, held.via) > (held.minutes, c.via):
                best[c.person_key] = c
        found.extend((2, c) for c in _ranked(list(best.values()), params.limit))
    contacts = tuple(
        TraceContact(
            person_key=c.person_key,
            degree=degree,
            via_person_key=None if degree == 1 else c.via,
            overlap_minutes=round(c.minutes, 3),
            visits=c.visits,
            site_ids=c.site_ids,
            first_contact_ts=c.first_ts,
            masked_name=c.masked_name,
            masked_number=c.masked_number,
        )
        for degree, c in found
    )
    return TraceResult(
        person_key=index,
        since=since,
        until=until,
        margin_minutes=params.margin_minutes,
        visits=visits,
        contacts=contacts,
    )
