"""Visits and stays, derived from the scans as batches arrive (DESIGN §7).

What a visit is.  A visit starts with a person's ALLOWED "in" scan at a site and ends with their
next allowed "out" scan at the same site (any gateway, any lane of the site: a person may enter
by gateway A and leave by gateway B).  Allowed scans, not passages: every allowed scan carries
the person key and the lane direction, while a passage exists only where the gate has a passage
sensor (and says nothing a scan does not, beyond "went through"); a denied scan is no visit.
A stay is the same with "checkin" and "checkout" scans at a hotel.

How it ends (``close_reason``, migration 0008):

- ``out``        the next event of the person at the site is an out (checkout) within the limit;
- ``reentry``    the next event is another in (checkin) within the limit: the person left
                 unseen; the visit ends when they came in again;
- ``reset``      no event before the site's daily reset (``[visits] reset_hour``, in the site's
                 timezone), which comes first: the visit is closed at the reset;
- ``max_length`` no event before ``in + [visits] max_visit_hours`` (stays:
                 ``max_stay_days``; stays have no daily reset), which comes first.

An in with neither an event nor a passed limit is open (``out_ts`` NULL); ``close_by`` holds
the time it will be closed at (``close_stale``, run by the hub's hourly upkeep, closes those
whose time has passed; queries treat an open visit as ending at ``least(close_by, now)``, so
they never wait for it).  An out with no open in before it (within the limit) is ignored.

Incremental and idempotent.  A visit is a pure function of the person's events at the site
in [in, in + limit] and of the clock, so for each (person, site) of a batch with events from
t0 to t1 the derivation re-reads that person's events in [t0 - limit, t1 + limit] and upserts
every visit whose in lies in [t0 - limit, t1] (keyed by its in record; only the end columns
change on conflict, so a hotel's room or guardian set on a stay is kept).  Visits outside
that range cannot depend on the new events.  Hence a resent batch changes nothing, and an out
that arrives before its in (another gateway's lane, a late upload) is paired when the in
arrives.  Two gateways of a site uploading the same person at once serialise on a transaction
advisory lock per (site, person) (taken in key order, last in the ingest transaction, after
the gateway's own row lock), so the later one reads the other's committed scans.

``derive_scans`` is that recomputation.  ``derive_ingested(con, site_id, scans, now=...)`` is
the one call the ingest makes, in its transaction, with the batch's scan tuples
(wire.SCAN_COLUMNS order), and gives the same visits cheaper, without building them in
Python: after the locks, one statement per kind (derive_sql.py) reads the batch back from
``scans`` by primary key range, counts each person's window with one index probe, and for
the persons whose window holds nothing but the batch's own events pairs their events with
``lead()`` and inserts the visits (a plain INSERT when the batch's scans are all new); the
other persons (an earlier visit, an out-of-order upload) come back to Python and are
recomputed as ``derive_scans`` does, a visit whose end did not change not written again.  A
batch whose daily resets are not each one instant (the reset hour in a DST gap or fold) is
derived in Python from the batch's events (next_reset's fold rules).
tests/central/queries/test_derive_fast.py holds all of these to the full recomputation.
Settings come from ``configure`` (the hub calls it at start with its ``[visits]`` section).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

from suishen.central.connection import Connection
from suishen.central.derive_sql import derive_sql
from suishen.central.partitions import ensure_partitions_for, partition_name
from suishen.settings import SettingError, setting
from suishen.sync.wire import SCAN_COLUMNS

__all__ = [
    "DeriveSettings",
    "close_stale",
    "configure",
    "derive_ingested",
    "derive_scans",
    "settings",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeriveSettings:
    """Visits and stays derived from the scans."""

    in_ingest: bool = setting(
        "derive visits and stays in the ingest transaction (off: nothing derives them; "
        "for measuring the ingest without it)",
        True,
    )
    reset_hour: int = setting(
        "hour of the day (in the site's timezone) at which a visit still open is closed "
        "(close_reason 'reset')",
        4,
        ge=0,
        le=23,
    )
    max_visit_hours: float = setting(
        "longest visit: one still open this long after its in is closed (close_reason "
        "'max_length')",
        16.0,
    )
    max_stay_days: int = setting(
        "longest hotel stay: one with no checkout this long after its checkin is closed",
        30,
        ge=1,
    )

    def __post_init__(self) -> None:
        if not 0 < self.max_visit_hours <= 24 * 7:
            raise SettingError("max_visit_hours", "must be > 0 and at most 168")

    @property
    def max_visit(self) -> dt.timedelta:
        return dt.timedelta(hours=self.max_visit_hours)

    @property
    def max_stay(self) -> dt.timedelta:
        return dt.timedelta(days=self.max_stay_days)


_active = DeriveSettings()


def configure(value: DeriveSettings) -> None:
    """Set the settings the ingest's derivation uses (the hub calls this once at start)."""
    global _active  # one process-wide setting, set once at start
    _active = value


def settings() -> DeriveSettings:
    return _active


@dataclasses.dataclass(frozen=True, slots=True)
class _Kind:
    table: str
    opens: str
    closes: str
    columns: tuple[str, ...]  # key columns of the table, in _Derived order
    daily_reset: bool
    key: tuple[str, ...]  # the primary key's columns (the upsert's conflict target)


VISITS: Final = _Kind(
    "visits",
    "in",
    "out",
    ("in_gateway_id", "in_journal_id", "in_seq", "in_ts", "out_gateway_id", "out_seq", "out_ts"),
    daily_reset=True,
    key=("site_id", "in_ts", "in_gateway_id", "in_journal_id", "in_seq"),  # migration 0016
)
STAYS: Final = _Kind(
    "stays",
    "checkin",
    "checkout",
    (
        "checkin_gateway_id",
        "checkin_journal_id",
        "checkin_seq",
        "checkin_ts",
        "checkout_gateway_id",
        "checkout_seq",
        "checkout_ts",
    ),
    daily_reset=False,
    key=(  # migration 0017
        "site_id",
        "checkin_ts",
        "checkin_gateway_id",
        "checkin_journal_id",
        "checkin_seq",
    ),
)
_KIND_OF: Final = {"in": VISITS, "out": VISITS, "checkin": STAYS, "checkout": STAYS}

_I = {name: SCAN_COLUMNS.index(name) for name in SCAN_COLUMNS}
_DIRECTION, _VERDICT, _PERSON, _SITE = (
    _I["direction"],
    _I["verdict"],
    _I["person_key"],
    _I["site_id"],
)


class _Event(NamedTuple):
    """A scan as the derivation sees it (internal: a named tuple, built per allowed scan of
    every batch, costs a third of a frozen dataclass)."""

    ts: dt.datetime
    gateway_id: str
    seq: int
    journal_id: str
    direction: str
    zone: str
    nationality: str | None
    minor: bool | None
    masked_name: str | None
    masked_number: str | None


# A scan tuple's columns of an _Event, in its field order.
_EVENT_FIELDS: Final = operator.itemgetter(*(_I[name] for name in _Event._fields))


def next_reset(ts: dt.datetime, tz: dt.tzinfo, hour: int) -> dt.datetime:
    """The first daily reset (``hour``:00 in ``tz``) strictly after ``ts``."""
    local = ts.astimezone(tz)
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate.replace(tzinfo=None) + dt.timedelta(days=1)).replace(tzinfo=tz)
    return candidate.astimezone(dt.UTC)


_RESETS: dict[tuple[dt.tzinfo, int, dt.date, int, bool], dt.datetime] = {}


def _next_reset_cached(ts: dt.datetime, tz: dt.tzinfo, hour: int) -> dt.datetime:
    """``next_reset(ts, tz, hour)``, remembered: its value depends only on ts's local date,
    its fold and whether its local hour is past ``hour`` (one astimezone per call)."""
    local = ts.astimezone(tz)
    key = (tz, hour, local.date(), local.fold, local.hour >= hour)
    found = _RESETS.get(key)
    if found is None:
        if len(_RESETS) > 4096:
            _RESETS.clear()
        found = _RESETS[key] = next_reset(ts, tz, hour)
    return found


def _close(
    kind: _Kind,
    start: _Event,
    following: _Event | None,
    *,
    tz: dt.tzinfo,
    now: dt.datetime,
    config: DeriveSettings,
) -> tuple[_Event | None, dt.datetime | None, str | None, dt.datetime]:
    """(the closing event, out_ts, close_reason, close_by) of a visit or stay."""
    limit = config.max_visit if kind is VISITS else config.max_stay
    max_at = start.ts + limit
    close_by, reason = max_at, "max_length"
    if kind.daily_reset:
        reset_at = _next_reset_cached(start.ts, tz, config.reset_hour)
        if reset_at < max_at:
            close_by, reason = reset_at, "reset"
    if following is not None and following.ts <= close_by:
        if following.direction == kind.closes:
            return following, following.ts, "out", close_by
        return None, following.ts, "reentry", close_by
    if close_by <= now:
        return None, close_by, reason, close_by
    return None, None, None, close_by


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
    """The fast path's one look-up for a batch (see ``_derive_batch``): per person, the events
    in the window of their batch events, returned only for a person whose window holds more
    than those (``$5``: how many the batch has); each opening event with the end columns of
    the visit or stay keyed by it, when there is one.  Both look-ups are fenced laterals
    (index probes per person and per event, never a join over the table)."""
    in_gateway, in_journal, in_seq, in_ts, out_gateway, out_seq, out_ts = kind.columns
    # Column and table names are the _Kind constants above, never input.
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

_End = tuple[str | None, int | None, dt.datetime | None, str | None, dt.datetime]


def _order(event: _Event) -> tuple[dt.datetime, str, str, int]:
    return (event.ts, event.gateway_id, event.journal_id, event.seq)


def _event(r: Any) -> _Event:
    return _Event(
        r["ts"],
        r["gateway_id"],
        r["seq"],
        r["journal_id"],
        r["direction"],
        r["zone"],
        r["nationality"],
        r["minor"],
        r["masked_name"],
        r["masked_number"],
    )


def _windows_of(
    rows: list[Any],
) -> tuple[dict[str, list[_Event]], dict[tuple[str, str, int, dt.datetime], _End]]:
    """_WINDOW's rows as each person's events, and the end columns of the visits (stays) already
    stored, by their opening record's key."""
    windows: dict[str, list[_Event]] = {}
    held: dict[tuple[str, str, int, dt.datetime], _End] = {}
    for r in rows:
        windows.setdefault(r["person_key"], []).append(_event(r))
        if r["held"]:
            held[(r["gateway_id"], r["journal_id"], r["seq"], r["ts"])] = (
                r["end_gateway_id"],
                r["end_seq"],
                r["end_ts"],
                r["close_reason"],
                r["close_by"],
            )
    return windows, held


def _rows_of(
    kind: _Kind,
    site_id: str,
    person: str,
    events: Sequence[_Event],
    window: tuple[dt.datetime, dt.datetime],
    *,
    tz: dt.tzinfo,
    now: dt.datetime,
    config: DeriveSettings,
    held: dict[tuple[str, str, int, dt.datetime], _End] | None = None,
) -> list[tuple[Any, ...]]:
    """The visits (stays) of ``person`` whose opening event lies in ``window``, from their
    ``events`` (sorted, every event within the limit after those openings); a row ``held``
    (key -> end columns as stored) with the same end is left out: writing it changes nothing."""
    low, high = window
    out: list[tuple[Any, ...]] = []
    for i, start in enumerate(events):
        if start.direction != kind.opens or not low <= start.ts <= high:
            continue
        following = events[i + 1] if i + 1 < len(events) else None
        closing, out_ts, reason, close_by = _close(
            kind, start, following, tz=tz, now=now, config=config
        )
        end: _End = (
            closing.gateway_id if closing else None,
            closing.seq if closing else None,
            out_ts,
            reason,
            close_by,
        )
        key = (start.gateway_id, start.journal_id, start.seq, start.ts)
        if held is not None and held.get(key) == end:
            continue
        first = (
            site_id,
            start.zone if kind is VISITS else start.nationality,
            person,
            start.gateway_id,
            start.journal_id,
            start.seq,
            start.ts,
            *end,
        )
        extra = (start.masked_name, start.masked_number) if kind is VISITS else (start.minor,)
        out.append((*first, *extra))
    return out


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


async def _derive_kind(
    con: Connection,
    kind: _Kind,
    site_id: str,
    spans: dict[str, tuple[dt.datetime, dt.datetime]],
    *,
    tz: dt.tzinfo,
    now: dt.datetime,
    config: DeriveSettings,
) -> int:
    """The full recomputation: every event of each person in [first - limit, last + limit]."""
    limit = config.max_visit if kind is VISITS else config.max_stay
    persons = sorted(spans)
    rows = await con.fetch(
        _FETCH,
        site_id,
        persons,
        [spans[p][0] - limit for p in persons],
        [spans[p][1] + limit for p in persons],
        [kind.opens, kind.closes],
    )
    events: dict[str, list[_Event]] = {}
    for r in rows:
        events.setdefault(r["person_key"], []).append(_event(r))
    out: list[tuple[Any, ...]] = []
    for person, evs in events.items():
        evs.sort(key=_order)
        window = (spans[person][0] - limit, spans[person][1])
        out += _rows_of(kind, site_id, person, evs, window, tz=tz, now=now, config=config)
    await _write(con, kind, out, frozenset())
    return len(out)


async def _derive_batch(
    con: Connection,
    kind: _Kind,
    site_id: str,
    batch: dict[str, list[_Event]],
    *,
    ensured: frozenset[dt.date],
    tz: dt.tzinfo,
    now: dt.datetime,
    config: DeriveSettings,
) -> int:
    """The full recomputation of ``_derive_kind`` for a stored batch's events, cheaper.

    A person's recomputation reads their events in the window [first - limit, last + limit]
    of their batch events.  When that window holds nothing but the batch's own events (the
    usual case: a new arrival's in, or an in and its out, in one upload), those are the
    events: the visits come from the batch alone.  One statement counts each window and
    returns the events only of the others (an event of another upload in the window: a late
    or out-of-order upload, or the person's earlier visit), with the end columns of the
    visits already keyed by them; these persons are recomputed as ``_derive_kind`` does, and
    a visit whose end did not change is not written again.  The batch's events are stored
    (in this transaction or before, identical), so a window holds at least them."""
    limit = config.max_visit if kind is VISITS else config.max_stay
    persons = sorted(batch)
    for person in persons:
        batch[person].sort(key=_order)
    rows = await con.fetch(
        _WINDOW[kind],
        site_id,
        persons,
        [batch[p][0].ts - limit for p in persons],
        [batch[p][-1].ts + limit for p in persons],
        [len(batch[p]) for p in persons],
        [kind.opens, kind.closes],
        kind.opens,
    )
    windows, held = _windows_of(rows)
    out: list[tuple[Any, ...]] = []
    for person in persons:
        evs = batch[person]
        window = (evs[0].ts - limit, evs[-1].ts)
        others = windows.get(person)
        if others is None:
            out += _rows_of(kind, site_id, person, evs, window, tz=tz, now=now, config=config)
        else:
            others.sort(key=_order)
            out += _rows_of(
                kind, site_id, person, others, window, tz=tz, now=now, config=config, held=held
            )
    return await _write(con, kind, out, ensured)


async def derive_scans(
    con: Connection,
    site_id: str,
    events: Iterable[tuple[str, str, dt.datetime]],
    *,
    now: dt.datetime,
    config: DeriveSettings | None = None,
) -> int:
    """Re-derive the visits and stays touched by ``events`` ((person_key, direction, ts) of
    allowed scans at ``site_id``, already stored); return how many visits/stays were written
    (inserted or confirmed).  Must run inside a transaction.  (The full recomputation: the
    ingest's ``derive_ingested`` gives the same visits, cheaper.)"""
    config = _active if config is None else config
    spans: dict[_Kind, dict[str, tuple[dt.datetime, dt.datetime]]] = {VISITS: {}, STAYS: {}}
    for person, direction, ts in events:
        kind = _KIND_OF.get(direction)
        if kind is None:
            continue
        span = spans[kind].get(person)
        spans[kind][person] = (ts, ts) if span is None else (min(span[0], ts), max(span[1], ts))
    if not spans[VISITS] and not spans[STAYS]:
        return 0
    tz = await _lock(con, site_id, [p for kind_spans in spans.values() for p in kind_spans])
    written = 0
    for kind in (VISITS, STAYS):
        if spans[kind]:
            written += await _derive_kind(
                con, kind, site_id, spans[kind], tz=tz, now=now, config=config
            )
    return written


def _ranges(scans: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...] | None:
    """The batch's (gateway_id, journal_id) groups as derive_sql's range arrays: first and
    last seq, first and last ts of each (one group for an upload: one journal)."""
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in scans:
        groups.setdefault((row[0], row[-1]), []).append(row)
    if not groups:
        return None
    arrays: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for (gateway_id, journal_id), rows in sorted(groups.items()):
        seqs = [row[1] for row in rows]
        stamps = [row[2] for row in rows]
        for array, value in zip(
            arrays,
            (gateway_id, journal_id, min(seqs), max(seqs), min(stamps), max(stamps)),
            strict=True,
        ):
            array.append(value)
    return arrays


def _resets(
    tz: dt.tzinfo, hour: int, low: dt.datetime, high: dt.datetime
) -> list[dt.datetime] | None:
    """The daily resets (``hour``:00 in ``tz``) of the local days around [low, high], as
    instants: the next reset of an opening in that range is the first of them after it (what
    ``next_reset`` gives).  None when one of them is not one well-defined instant (the reset
    hour falls in a DST gap or fold): then ``next_reset``'s fold rules decide, in Python."""
    day = low.astimezone(tz).date() - dt.timedelta(days=1)
    last = high.astimezone(tz).date() + dt.timedelta(days=1)
    out = []
    while day <= last:
        wall = dt.datetime.combine(day, dt.time(hour), tzinfo=tz)
        instant = wall.astimezone(dt.UTC)
        if wall.replace(fold=1).astimezone(dt.UTC) != instant:
            return None
        out.append(instant)
        day += dt.timedelta(days=1)
    return out


_SET_SQL: Final = {
    (kind, upsert): derive_sql(
        table=kind.table,
        columns=kind.columns,
        key=kind.key,
        label="zone" if kind is VISITS else "nationality",
        extra=("masked_name", "masked_number") if kind is VISITS else ("minor",),
        extra_values=("masked_name", "masked_number") if kind is VISITS else ("minor",),
        upsert=upsert,
    )
    for kind in (VISITS, STAYS)
    for upsert in (True, False)
}


def _batch_events(
    kind: _Kind, site_id: str, scans: Sequence[tuple[Any, ...]]
) -> dict[str, list[_Event]]:
    """The batch's allowed events of ``kind`` at the site by person (the Python path)."""
    batch: dict[str, list[_Event]] = {}
    for row in scans:
        if (
            _KIND_OF.get(row[_DIRECTION]) is not kind
            or row[_VERDICT] != "allow"
            or row[_PERSON] is None
            or row[_SITE] != site_id
        ):
            continue
        batch.setdefault(row[_PERSON], []).append(_Event._make(_EVENT_FIELDS(row)))
    return batch


async def _recompute(
    con: Connection,
    kind: _Kind,
    site_id: str,
    spans: Sequence[tuple[str, dt.datetime, dt.datetime]],
    *,
    ensured: frozenset[dt.date],
    tz: dt.tzinfo,
    now: dt.datetime,
    config: DeriveSettings,
) -> int:
    """``_derive_kind`` for persons (person, first, last event of the batch) whose window holds
    other events, with the end columns of the visits already stored: those unchanged are not
    written again; return how many were written."""
    limit = config.max_visit if kind is VISITS else config.max_stay
    rows = await con.fetch(
        _WINDOW[kind],
        site_id,
        [person for person, _lo, _hi in spans],
        [lo - limit for _person, lo, _hi in spans],
        [hi + limit for _person, _lo, hi in spans],
        [-1] * len(spans),  # every window returned
        [kind.opens, kind.closes],
        kind.opens,
    )
    windows, held = _windows_of(rows)
    out: list[tuple[Any, ...]] = []
    for person, lo, hi in spans:
        evs = sorted(windows.get(person, ()), key=_order)
        out += _rows_of(
            kind, site_id, person, evs, (lo - limit, hi), tz=tz, now=now, config=config, held=held
        )
    return await _write(con, kind, out, ensured)


async def _derive_set(
    con: Connection,
    kind: _Kind,
    site_id: str,
    scans: Sequence[tuple[Any, ...]],
    ranges: tuple[list[Any], ...],
    *,
    ensured: frozenset[dt.date],
    tz: dt.tzinfo,
    now: dt.datetime,
    config: DeriveSettings,
    new: bool,
) -> int:
    """Derive one kind for a stored batch: the persons whose window holds only the batch's
    events in one statement (derive_sql.py; a plain INSERT when the batch's scans are ``new``),
    the others by ``_recompute``."""
    limit = config.max_visit if kind is VISITS else config.max_stay
    resets: list[dt.datetime] | None = []
    if kind.daily_reset:
        resets = _resets(tz, config.reset_hour, min(ranges[4]), max(ranges[5]))
    if resets is None:  # a reset in a DST gap or fold: the Python path
        batch = _batch_events(kind, site_id, scans)
        if not batch:
            return 0
        return await _derive_batch(
            con, kind, site_id, batch, ensured=ensured, tz=tz, now=now, config=config
        )
    found = await con.fetchrow(
        _SET_SQL[kind, not new],
        site_id,
        *ranges,
        [kind.opens, kind.closes],
        resets,
        limit,
        kind.opens,
        kind.closes,
        now,
    )
    assert found is not None  # an aggregate: always one row
    written: int = found["written"]
    if found["persons"]:
        spans = list(zip(found["persons"], found["los"], found["his"], strict=True))
        written += await _recompute(
            con, kind, site_id, spans, ensured=ensured, tz=tz, now=now, config=config
        )
    return written


async def derive_ingested(
    con: Connection,
    site_id: str,
    scans: Sequence[tuple[Any, ...]],
    *,
    now: dt.datetime,
    config: DeriveSettings | None = None,
    new: bool = False,
) -> int:
    """The ingest's hook: derive from a batch's stored scans (tuples in wire.SCAN_COLUMNS
    order, of one gateway journal each: denied, keyless and other-site rows are skipped), in
    the ingest's transaction; return how many visits/stays were written (those that did not
    change are not).  The same visits as ``derive_scans`` of the batch's events.  Nothing when
    ``in_ingest`` is off.  ``new``: every scan of the batch was stored by this transaction (a
    batch above the journal's high water), so no visit or stay can be keyed by them yet: they
    are inserted without a conflict check (a unique violation, the same key from another
    journal, aborts the transaction: the ingest then retries with ``new`` False).

    The server reads the batch back by primary key (the seq and ts range of each journal in
    ``scans``: the rows stored in those ranges are the batch's) and does the per-row work:
    one statement takes the locks, reads the timezone and names the missing partitions, one
    per kind derives (derive_sql.py)."""
    config = _active if config is None else config
    if not config.in_ingest:
        return 0
    ranges = _ranges(scans)
    if ranges is None:
        return 0
    # The persons to lock: those of the allowed scans (a superset of those derived is safe).
    persons = {row[_PERSON] for row in scans if row[_VERDICT] == "allow"}
    persons.discard(None)
    directions = {row[_DIRECTION] for row in scans}
    kinds = [kind for kind in (VISITS, STAYS) if {kind.opens, kind.closes} & directions]
    if not persons or not kinds:
        return 0
    # The partitions the batch's openings need: those of every UTC day of its time range.
    first, last = min(ranges[4]).astimezone(dt.UTC), max(ranges[5]).astimezone(dt.UTC)
    days = frozenset(
        first.date() + dt.timedelta(days=n) for n in range((last.date() - first.date()).days + 1)
    )
    wanted = {
        partition_name(kind.table, day): (kind.table, day)
        for kind in kinds
        if kind.opens in directions
        for day in days
    }
    tz = await _lock(con, site_id, persons, wanted)
    written = 0
    for kind in kinds:
        ensured = days if kind.opens in directions else frozenset()
        written += await _derive_set(
            con,
            kind,
            site_id,
            scans,
            ranges,
            ensured=ensured,
            tz=tz,
            now=now,
            config=config,
            new=new,
        )
    return written


async def close_stale(
    con: Connection,
    *,
    now: dt.datetime,
    config: DeriveSettings | None = None,
    site_id: str | None = None,
) -> int:
    """Close the open visits and stays (of ``site_id``, or of every site) whose ``close_by``
    has passed, at ``close_by`` with reason 'reset' or 'max_length'; return how many."""
    config = _active if config is None else config
    visits = await con.execute(
        "UPDATE visits SET out_ts = close_by, close_reason = CASE WHEN close_by >= in_ts + $3 "
        "THEN 'max_length' ELSE 'reset' END "
        "WHERE out_ts IS NULL AND close_by <= $1 AND ($2::text IS NULL OR site_id = $2)",
        now,
        site_id,
        config.max_visit,
    )
    stays = await con.execute(
        "UPDATE stays SET checkout_ts = close_by, close_reason = 'max_length' "
        "WHERE checkout_ts IS NULL AND close_by <= $1 AND ($2::text IS NULL OR site_id = $2)",
        now,
        site_id,
    )
    return int(visits.rsplit(" ", 1)[-1]) + int(stays.rsplit(" ", 1)[-1])
