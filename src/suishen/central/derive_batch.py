"""The derivation's batch paths (derive.py): the full recomputation (``_derive_kind``, for
``derive_scans``), the ingest's set-based path (``_derive_set``: derive_sql.py's statement, the
persons it leaves recomputed by ``_recompute``) and its Python path (``_derive_batch``, for a
batch whose daily resets are not each one instant).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

from suishen.central.connection import Connection
from suishen.central.derive_pairing import (
    STAYS,
    VISITS,
    _batch_events,
    _Event,
    _event,
    _Kind,
    _order,
    _resets,
    _rows_of,
    _windows_of,
)
from suishen.central.derive_settings import DeriveSettings
from suishen.central.derive_sql import derive_sql
from suishen.central.derive_store import _FETCH, _WINDOW, _write

__all__: list[str] = []


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
