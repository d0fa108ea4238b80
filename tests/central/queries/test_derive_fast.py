"""The ingest's derivation (derive_ingested: the batch's own events when a person's window
holds nothing else, else the recomputation of what changed) against the full recomputation
(derive_scans) on real PostgreSQL: the same visits and stays, whatever the batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import zoneinfo
from collections.abc import Iterator
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suishen.central import partitions
from suishen.central.derive import (
    DeriveSettings,
    derive_ingested,
    derive_scans,
)
from suishen.central.derive_pairing import _resets, next_reset
from suishen.sync.wire import SCAN_COLUMNS
from tests.central.hubkit import person

# A week whose Sunday starts European summer time (2026-03-29, 02:00 -> 03:00 in Berlin):
# resets and limits across a DST change as well as in a zone without one.  A reset at 03:00
# is one instant every day (the set-based path in SQL); at 02:00 it falls in Berlin's gap
# that Sunday (the batch is derived in Python, by next_reset's fold rules).
BASE = dt.datetime(2026, 3, 27, 20, 0, tzinfo=dt.UTC)
CONFIGS = {
    hour: DeriveSettings(reset_hour=hour, max_visit_hours=6.0, max_stay_days=1) for hour in (2, 3)
}
_I = {name: SCAN_COLUMNS.index(name) for name in SCAN_COLUMNS}
_examples = itertools.count()

# One event: (person 0-2, direction, minutes after BASE, gateway 0-1, allowed?)
EVENT = st.tuples(
    st.integers(0, 2),
    st.sampled_from(["in", "out", "in", "out", "checkin", "checkout"]),
    st.integers(0, 60 * 60),
    st.integers(0, 1),
    st.booleans().map(lambda denied: not denied) | st.just(True),
)


def _scan(
    gateway_id: str, seq: int, site_id: str, event: tuple[int, str, int, int, bool]
) -> tuple[Any, ...]:
    who, direction, minutes, _gateway, allowed = event
    values: dict[str, Any] = dict.fromkeys(SCAN_COLUMNS)
    values |= {
        "gateway_id": gateway_id,
        "seq": seq,
        "ts": BASE + dt.timedelta(minutes=minutes),
        "site_id": site_id,
        "lane_id": "lane-1",
        "direction": direction,
        "format": "SSC1",
        "verdict": "allow" if allowed else "deny",
        "reason": None if allowed else "status_red",
        "status": "G",
        "latency_us": 1000,
        "person_key": person(who),
        "nationality": "DEU" if who else "CHN",
        "minor": who == 2,
        "masked_name": f"名*{who}",
        "masked_number": f"310***{who}",
        "zone": "main" if seq % 3 else "east",
        "journal_id": "00000000000000a1",
    }
    return tuple(values[c] for c in SCAN_COLUMNS)


async def _store(con: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await con.executemany(
        f"INSERT INTO scans ({', '.join(SCAN_COLUMNS)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(SCAN_COLUMNS)))}) "
        "ON CONFLICT DO NOTHING",
        rows,
    )


async def _table(con: asyncpg.Connection, table: str, site_id: str) -> list[tuple[Any, ...]]:
    """The site's rows, gateway ids without their universe's prefix, ordered."""
    rows = await con.fetch(f"SELECT * FROM {table} WHERE site_id = $1", site_id)
    out = []
    for r in rows:
        values = dict(r)
        values.pop("site_id")
        for column, value in values.items():
            if column.endswith("gateway_id") and value is not None:
                values[column] = value.split(":", 1)[1]
        out.append(tuple(sorted(values.items())))
    return sorted(out, key=repr)


def _batches(
    events: list[tuple[int, str, int, int, bool]], cuts: list[int], order: list[int]
) -> Iterator[tuple[int, list[tuple[int, int, tuple[int, str, int, int, bool]]]]]:
    """Each gateway's journal (seq in event order) cut into uploads, in ``order``."""
    journals: dict[int, list[tuple[int, int, tuple[int, str, int, int, bool]]]] = {0: [], 1: []}
    for event in events:
        journal = journals[event[3]]
        journal.append((event[3], len(journal) + 1, event))
    uploads = []
    for gateway, journal in journals.items():
        step = max(1, cuts[gateway])
        uploads += [(gateway, journal[i : i + step]) for i in range(0, len(journal), step)]
    for index in order:
        if uploads:
            yield uploads[index % len(uploads)]


@given(
    events=st.lists(EVENT, min_size=1, max_size=14),
    cuts=st.lists(st.integers(1, 5), min_size=2, max_size=2),
    order=st.lists(st.integers(0, 50), min_size=1, max_size=14),
    now_minutes=st.lists(st.integers(0, 80 * 60), min_size=14, max_size=14),
    timezone=st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "UTC"]),
    reset_hour=st.sampled_from([3, 2]),
)
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ingest_derivation_equals_the_full_recomputation(
    db_dsn: str,
    *,
    events: list[tuple[int, str, int, int, bool]],
    cuts: list[int],
    order: list[int],
    now_minutes: list[int],
    timezone: str,
    reset_hour: int,
) -> None:
    """Random in/out and checkin/checkout events of three people at two gateways, uploaded in
    random batches in a random order (resends and out-of-order uploads included), each at
    its own clock, with a daily reset that is one instant every day or one that falls in a
    DST gap: after every upload, the visits and stays derived by the ingest's path (in SQL
    for persons whose window holds only the batch, recomputed for the others; in Python
    around the gap) equal those of the full recomputation of the same uploads (every
    column)."""
    asyncio.run(
        _compare(
            db_dsn,
            events=events,
            cuts=cuts,
            order=order,
            now_minutes=now_minutes,
            timezone=timezone,
            config=CONFIGS[reset_hour],
        )
    )


async def _compare(
    dsn: str,
    *,
    events: list[tuple[int, str, int, int, bool]],
    cuts: list[int],
    order: list[int],
    now_minutes: list[int],
    timezone: str,
    config: DeriveSettings,
) -> None:
    n = next(_examples)
    fast, full = f"fast-{n}", f"full-{n}"
    con = await asyncpg.connect(dsn)
    try:
        for site in (fast, full):
            await con.execute(
                "INSERT INTO sites (site_id, kind, timezone) VALUES ($1, 'hotel', $2)",
                site,
                timezone,
            )
        days = {partitions.day_of(BASE + dt.timedelta(days=d)) for d in range(-1, 5)}
        await partitions.ensure_partitions_for(con, "scans", days)
        for step, (gateway, upload) in enumerate(_batches(events, cuts, order)):
            now = BASE + dt.timedelta(minutes=now_minutes[step % len(now_minutes)])
            for site, derive_fast in ((fast, True), (full, False)):
                gateway_id = f"{site}:gw-{gateway}"
                rows = [_scan(gateway_id, seq, site, event) for _g, seq, event in upload]
                async with con.transaction():
                    await _store(con, rows)
                    if derive_fast:
                        await derive_ingested(con, site, rows, now=now, config=config)
                    else:
                        await derive_scans(
                            con,
                            site,
                            [
                                (r[_I["person_key"]], r[_I["direction"]], r[_I["ts"]])
                                for r in rows
                                if r[_I["verdict"]] == "allow"
                            ],
                            now=now,
                            config=config,
                        )
            for table in ("visits", "stays"):
                assert await _table(con, table, fast) == await _table(con, table, full), (
                    table,
                    step,
                )
    finally:
        await con.close()


def test_resets_are_the_next_reset_of_every_instant_or_none_around_a_gap_or_fold() -> None:
    """The set-based path's resets: where the reset hour is one instant every day, the first
    of them after any time is next_reset's answer (every 7 minutes over four days across
    Berlin's spring change with a reset at 03:00); a reset hour in the spring gap (02:00) or
    the autumn fold (02:00 on 2026-10-25) gives None (those batches go the Python way)."""
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    low, high = BASE, BASE + dt.timedelta(days=4)
    resets = _resets(berlin, 3, low, high)
    assert resets is not None
    ts = low
    while ts <= high:
        assert min(r for r in resets if r > ts) == next_reset(ts, berlin, 3), ts
        ts += dt.timedelta(minutes=7)
    assert _resets(berlin, 2, low, high) is None
    autumn = dt.datetime(2026, 10, 24, 12, tzinfo=dt.UTC)
    assert _resets(berlin, 2, autumn, autumn) is None
    assert _resets(berlin, 3, autumn, autumn) is not None
    assert _resets(zoneinfo.ZoneInfo("Asia/Shanghai"), 2, low, high) is not None
