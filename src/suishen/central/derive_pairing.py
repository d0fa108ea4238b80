"""The pure part of the derivation (derive.py): no I/O, no clock.

The two kinds (visits: in/out with the site's daily reset; stays: checkin/checkout), the event
a scan is to the derivation, the daily reset (``next_reset``, cached; ``_resets``, the instants
the set-based path is given), and the pairing of a person's sorted events into the rows of
their visits or stays (``_close``: how each ends; ``_rows_of``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from suishen.central.derive_settings import DeriveSettings
from suishen.sync.wire import SCAN_COLUMNS

__all__ = ["STAYS", "VISITS", "next_reset"]


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
    """derive_store._WINDOW's rows as each person's events, and the end columns of the visits
    (stays) already stored, by their opening record's key."""
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
