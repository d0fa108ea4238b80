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
they never wait for it).  Events after the limit start
nothing: an out with no open in before it is ignored.

Incremental and idempotent.  A visit is a pure function of the person's events at the site
in [in, in + limit] and of the clock, so for each (person, site) of a batch with events from
t0 to t1 the derivation re-reads that person's events in [t0 - limit, t1 + limit] and upserts
every visit whose in lies in [t0 - limit, t1] (keyed by its in record; only the end columns
change on conflict, so a hotel's room or guardian set on a stay is kept).  Visits outside
that range cannot depend on the new events.  Hence a resent batch changes nothing, and an out
that arrives before its in (another gateway's lane, a late upload) is paired when the in
arrives.  Two gateways of a site uploading at once serialise on a transaction advisory lock
per site (taken last in the ingest transaction, after the gateway's own row lock).

``derive_ingested(con, site_id, scans, now=...)`` is the one call the ingest makes, in its
transaction, with the batch's scan tuples (wire.SCAN_COLUMNS order); settings come from
``configure`` (the hub calls it at start with its config's ``[visits]`` section).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any, Final

from suishen.central.connection import Connection
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


VISITS: Final = _Kind(
    "visits",
    "in",
    "out",
    ("in_gateway_id", "in_journal_id", "in_seq", "in_ts", "out_gateway_id", "out_seq", "out_ts"),
    daily_reset=True,
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
)
_KIND_OF: Final = {"in": VISITS, "out": VISITS, "checkin": STAYS, "checkout": STAYS}

_I = {name: SCAN_COLUMNS.index(name) for name in SCAN_COLUMNS}


@dataclasses.dataclass(frozen=True, slots=True)
class _Event:
    ts: dt.datetime
    gateway_id: str
    seq: int
    journal_id: str
    direction: str
    zone: str
    nationality: str | None
    minor: bool | None


def _lock_key(site_id: str) -> int:
    digest = hashlib.sha256(b"suishen:derive:" + site_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def next_reset(ts: dt.datetime, tz: dt.tzinfo, hour: int) -> dt.datetime:
    """The first daily reset (``hour``:00 in ``tz``) strictly after ``ts``."""
    local = ts.astimezone(tz)
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate.replace(tzinfo=None) + dt.timedelta(days=1)).replace(tzinfo=tz)
    return candidate.astimezone(dt.UTC)


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
        reset_at = next_reset(start.ts, tz, config.reset_hour)
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
       s.nationality, s.minor
FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(p, lo, hi)
JOIN LATERAL (
    SELECT * FROM (
        SELECT ts, gateway_id, seq, journal_id, direction, zone, nationality, minor, site_id,
               verdict
        FROM scans WHERE person_key = u.p AND ts >= u.lo AND ts <= u.hi OFFSET 0
    ) AS mine
    WHERE site_id = $1 AND verdict = 'allow' AND direction = ANY($5::text[])
) AS s ON true
"""

_UPSERT_VISITS = """
INSERT INTO visits (site_id, zone, person_key, in_gateway_id, in_journal_id, in_seq, in_ts,
                    out_gateway_id, out_seq, out_ts, close_reason, close_by)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
    $7::timestamptz[], $8::text[], $9::bigint[], $10::timestamptz[], $11::text[],
    $12::timestamptz[])
ON CONFLICT (in_gateway_id, in_seq, in_ts) DO UPDATE SET
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
ON CONFLICT (checkin_gateway_id, checkin_seq, checkin_ts) DO UPDATE SET
    checkout_gateway_id = EXCLUDED.checkout_gateway_id, checkout_seq = EXCLUDED.checkout_seq,
    checkout_ts = EXCLUDED.checkout_ts, close_reason = EXCLUDED.close_reason,
    close_by = EXCLUDED.close_by
WHERE (stays.checkout_gateway_id, stays.checkout_seq, stays.checkout_ts, stays.close_reason,
       stays.close_by) IS DISTINCT FROM (EXCLUDED.checkout_gateway_id, EXCLUDED.checkout_seq,
       EXCLUDED.checkout_ts, EXCLUDED.close_reason, EXCLUDED.close_by)
"""


async def _ensure_partitions(con: Connection, table: str, days: set[dt.date]) -> None:
    names = {partition_name(table, day): day for day in days}
    missing = await con.fetch(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(quote_ident(name)) IS NULL",
        list(names),
    )
    if missing:
        await ensure_partitions_for(con, table, {names[r["name"]] for r in missing})


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
        events.setdefault(r["person_key"], []).append(
            _Event(
                r["ts"],
                r["gateway_id"],
                r["seq"],
                r["journal_id"],
                r["direction"],
                r["zone"],
                r["nationality"],
                r["minor"],
            )
        )
    out: list[tuple[Any, ...]] = []
    for person, evs in events.items():
        evs.sort(key=lambda e: (e.ts, e.gateway_id, e.journal_id, e.seq))
        low, high = spans[person][0] - limit, spans[person][1]
        for i, start in enumerate(evs):
            if start.direction != kind.opens or not low <= start.ts <= high:
                continue
            following = evs[i + 1] if i + 1 < len(evs) else None
            closing, out_ts, reason, close_by = _close(
                kind, start, following, tz=tz, now=now, config=config
            )
            first = (
                site_id,
                start.zone if kind is VISITS else start.nationality,
                person,
                start.gateway_id,
                start.journal_id,
                start.seq,
                start.ts,
                closing.gateway_id if closing else None,
                closing.seq if closing else None,
                out_ts,
                reason,
                close_by,
            )
            out.append(first if kind is VISITS else (*first, start.minor))
    if not out:
        return 0
    await _ensure_partitions(con, kind.table, {row[6].astimezone(dt.UTC).date() for row in out})
    columns = [list(c) for c in zip(*out, strict=True)]
    await con.execute(_UPSERT_VISITS if kind is VISITS else _UPSERT_STAYS, *columns)
    return len(out)


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
    (inserted or confirmed).  Must run inside a transaction."""
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
    await con.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(site_id))
    tz_name = await con.fetchval("SELECT timezone FROM sites WHERE site_id = $1", site_id)
    try:
        tz: dt.tzinfo = zoneinfo.ZoneInfo(tz_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    written = 0
    for kind in (VISITS, STAYS):
        if spans[kind]:
            written += await _derive_kind(
                con, kind, site_id, spans[kind], tz=tz, now=now, config=config
            )
    return written


async def derive_ingested(
    con: Connection, site_id: str, scans: Sequence[tuple[Any, ...]], *, now: dt.datetime
) -> int:
    """The ingest's hook: derive from a batch's stored scan tuples (wire.SCAN_COLUMNS order;
    denied, keyless and other-site rows are skipped).  Nothing when ``in_ingest`` is off."""
    if not _active.in_ingest:
        return 0
    verdict, person, direction, ts, site = (
        _I["verdict"],
        _I["person_key"],
        _I["direction"],
        _I["ts"],
        _I["site_id"],
    )
    return await derive_scans(
        con,
        site_id,
        (
            (row[person], row[direction], row[ts])
            for row in scans
            if row[verdict] == "allow" and row[person] is not None and row[site] == site_id
        ),
        now=now,
    )


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
