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

The modules: this one holds the settings in force and the entry points; derive_settings.py the
settings' type; derive_pairing.py the pure part (the kinds, the events, the daily reset, the
pairing into rows); derive_store.py the statements, the locks and the write; derive_batch.py
the batch paths (the full recomputation, the set-based path and the Python one); derive_sql.py
the set-based statement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from suishen.central.connection import Connection
from suishen.central.derive_batch import _derive_kind, _derive_set, _ranges
from suishen.central.derive_pairing import (
    _DIRECTION,
    _KIND_OF,
    _PERSON,
    _VERDICT,
    STAYS,
    VISITS,
    _Kind,
)
from suishen.central.derive_settings import DeriveSettings
from suishen.central.derive_store import _lock
from suishen.central.partitions import partition_name

__all__ = [
    "DeriveSettings",
    "close_stale",
    "configure",
    "derive_ingested",
    "derive_scans",
    "settings",
]


_active = DeriveSettings()


def configure(value: DeriveSettings) -> None:
    """Set the settings the ingest's derivation uses (the hub calls this once at start)."""
    global _active  # one process-wide setting, set once at start
    _active = value


def settings() -> DeriveSettings:
    return _active


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
