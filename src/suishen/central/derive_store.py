"""The derivation's statements and their execution (derive.py): the (site, person) locks
with the site's timezone and the missing partitions, the person's events in a window
(``_FETCH``; ``_WINDOW`` with the ends already stored), and the upsert of the rows.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from typing import Any, Final

from suishen.central.connection import Connection
from suishen.central.derive_pairing import STAYS, VISITS, _Kind
from suishen.central.partitions import ensure_partitions_for, partition_name

__all__: list[str] = []


# The person's scans by the (person_key, ts) index; OFFSET 0 keeps the site, verdict and
# direction filters out of the index choice (on a busy site the planner would otherwise walk
# the (site_id, ts) index over every scan of the site in the time range, per person).
_FETCH = """
SELECT u.p AS person_key, s.ts, s.gateway_id, s.seq, s.journal_id, s.direction, s.zone,
       s.nationality, s.minor, s.masked_name, s.masked_number
FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(p, lo, hi)
JOIN LATERAL (
    SELECT * FROM (
        SELECT ts, gateway_id, seq, journal_id, direction, zone, nationality, minor, site_id,
               verdict, masked_name, masked_number
        FROM scans WHERE person_key = u.p AND ts >= u.lo AND ts <= u.hi OFFSET 0
    ) AS mine
    WHERE site_id = $1 AND verdict = 'allow' AND direction = ANY($5::text[])
) AS s ON true
"""

_UPSERT_VISITS = """
INSERT INTO visits (site_id, zone, person_key, in_gateway_id, in_journal_id, in_seq, in_ts,
                    out_gateway_id, out_seq, out_ts, close_reason, close_by, masked_name,
                    masked_number)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
    $7::timestamptz[], $8::text[], $9::bigint[], $10::timestamptz[], $11::text[],
    $12::timestamptz[], $13::text[], $14::text[])
ON CONFLICT (site_id, in_ts, in_gateway_id, in_journal_id, in_seq) DO UPDATE SET
    out_gateway_id = EXCLUDED.out_gateway_id, out_seq = EXCLUDED.out_seq,
    out_ts = EXCLUDED.out_ts, close_reason = EXCLUDED.close_reason, close_by = EXCLUDED.close_by
WHERE (visits.out_gateway_id, visits.out_seq, visits.out_ts, visits.close_reason,
       visits.close_by) IS DISTINCT FROM (EXCLUDED.out_gateway_id, EXCLUDED.out_seq,
       EXCLUDED.out_ts, EXCLUDED.close_reason, EXCLUDED.close_by)
"""

_UPSERT_STAYS = """
INSERT INTO stays (site_id, nationality, person_key, checkin_gateway_id, checkin_journal_id,
                   checkin_seq, checkin_ts, checkout_gateway_id, checkout_seq, checkout_ts,
                   close_reason, close_by, minor)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
    $7::timestamptz[], $8::text[], $9::bigint[], $10::timestamptz[], $11::text[],
    $12::timestamptz[], $13::boolean[])
ON CONFLICT (site_id, checkin_ts, checkin_gateway_id, checkin_journal_id, checkin_seq)
DO UPDATE SET
    checkout_gateway_id = EXCLUDED.checkout_gateway_id, checkout_seq = EXCLUDED.checkout_seq,
    checkout_ts = EXCLUDED.checkout_ts, close_reason = EXCLUDED.close_reason,
    close_by = EXCLUDED.close_by
WHERE (stays.checkout_gateway_id, stays.checkout_seq, stays.checkout_ts, stays.close_reason,
       stays.close_by) IS DISTINCT FROM (EXCLUDED.checkout_gateway_id, EXCLUDED.checkout_seq,
       EXCLUDED.checkout_ts, EXCLUDED.close_reason, EXCLUDED.close_by)
"""


def _window_sql(kind: _Kind) -> str:
    """The fast path's one look-up for a batch (see derive_batch.py ``_derive_batch``): per
    person, the events in the window of their batch events, returned only for a person whose
    window holds more than those (``$5``: how many the batch has); each opening event with the
    end columns of the visit or stay keyed by it, when there is one.  Both look-ups are fenced
    laterals (index probes per person and per event, never a join over the table)."""
    in_gateway, in_journal, in_seq, in_ts, out_gateway, out_seq, out_ts = kind.columns
    # Column and table names are the _Kind constants (derive_pairing.py), never input.
    return f"""
SELECT u.p AS person_key, s.ts, s.gateway_id, s.seq, s.journal_id, s.direction, s.zone,
       s.nationality, s.minor, s.masked_name, s.masked_number, k.held, k.end_gateway_id,
       k.end_seq, k.end_ts, k.close_reason, k.close_by
FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[]) AS u(p, lo, hi, n)
JOIN LATERAL (
    SELECT mine.*, count(*) OVER () AS c FROM (
        SELECT ts, gateway_id, seq, journal_id, direction, zone, nationality, minor, site_id,
               verdict, masked_name, masked_number
        FROM scans WHERE person_key = u.p AND ts >= u.lo AND ts <= u.hi OFFSET 0
    ) AS mine
    WHERE site_id = $1 AND verdict = 'allow' AND direction = ANY($6::text[])
) AS s ON s.c <> u.n
LEFT JOIN LATERAL (
    SELECT true AS held, {out_gateway} AS end_gateway_id, {out_seq} AS end_seq,
           {out_ts} AS end_ts, close_reason, close_by
    FROM {kind.table}
    WHERE s.direction = $7 AND {kind.table}.site_id = $1 AND {in_gateway} = s.gateway_id
      AND {in_journal} = s.journal_id AND {in_seq} = s.seq AND {in_ts} = s.ts
    OFFSET 0
) AS k ON true
"""  # noqa: S608


_WINDOW: Final = {VISITS: _window_sql(VISITS), STAYS: _window_sql(STAYS)}
# The locks, the site's timezone and which of the partitions $3 are missing (one round trip).
# The (site, person) lock key is hashtextextended('suishen:derive:<site>:<person>', 0) (the
# server's stable 64-bit text hash, the one hash partitioning uses); taken in key order.
# It also sets plan_cache_mode to force_generic_plan for the rest of the transaction (the
# derivation's statements, prepared once per connection, run their generic plan: the server
# kept re-planning derive_sql's statement for every batch, about 1 ms of its ~10; the plans
# are the same, every value that matters being an array or a correlated one).
_LOCK = """
SELECT set_config('plan_cache_mode', 'force_generic_plan', true) AS plans,
       (SELECT count(pg_advisory_xact_lock(k)) FROM (
            SELECT DISTINCT hashtextextended('suishen:derive:' || $2 || ':' || p, 0) AS k
            FROM unnest($1::text[]) AS p ORDER BY 1 OFFSET 0) AS keys) AS locked,
       (SELECT timezone FROM sites WHERE site_id = $2) AS timezone,
       ARRAY(SELECT name FROM unnest($3::text[]) AS name
             WHERE to_regclass(quote_ident(name)) IS NULL) AS missing
"""


async def _ensure_partitions(con: Connection, table: str, days: set[dt.date]) -> None:
    names = {partition_name(table, day): day for day in days}
    missing = await con.fetch(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(quote_ident(name)) IS NULL",
        list(names),
    )
    if missing:
        await ensure_partitions_for(con, table, {names[r["name"]] for r in missing})


async def _write(
    con: Connection, kind: _Kind, out: list[tuple[Any, ...]], ensured: frozenset[dt.date]
) -> int:
    """Upsert the rows (only the end columns change on conflict), making the partitions they
    need unless ``ensured`` holds their days; return how many were inserted or changed."""
    if not out:
        return 0
    days = {row[6].astimezone(dt.UTC).date() for row in out}
    if not days <= ensured:
        await _ensure_partitions(con, kind.table, days)
    columns = [list(c) for c in zip(*out, strict=True)]
    return _count(await con.execute(_UPSERT_VISITS if kind is VISITS else _UPSERT_STAYS, *columns))


def _count(status: str) -> int:
    """Rows affected from a command status tag ("INSERT 0 12")."""
    return int(status.rsplit(" ", 1)[-1])


async def _lock(
    con: Connection,
    site_id: str,
    persons: Iterable[str],
    partitions: dict[str, tuple[str, dt.date]] | None = None,
) -> dt.tzinfo:
    """Take the (site, person) transaction locks in key order in one statement (no deadlock
    between two batches sharing persons; gateways of a site with different people derive in
    parallel); make those of ``partitions`` (name -> (table, day)) that are missing; return
    the site's timezone."""
    wanted = partitions or {}
    found = await con.fetchrow(_LOCK, list(set(persons)), site_id, list(wanted))
    tz_name = None if found is None else found["timezone"]
    missing: dict[str, set[dt.date]] = {}
    for name in [] if found is None else found["missing"]:
        table, day = wanted[name]
        missing.setdefault(table, set()).add(day)
    for table, days in sorted(missing.items()):
        await ensure_partitions_for(con, table, days)
    try:
        return zoneinfo.ZoneInfo(tz_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC
