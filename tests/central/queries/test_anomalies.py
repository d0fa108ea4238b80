"""Anomalies (central/queries/anomalies.py): impossible travel and denied bursts, by hand."""

from __future__ import annotations

import datetime as dt

import asyncpg

from suishen.central.queries.anomalies import AnomaliesParams, anomalies
from suishen.central.scope import Scope
from tests.central.queries.citykit import City, at, key


def minutes(m: float) -> dt.datetime:
    return at(m / 60)


async def build(con: asyncpg.Connection) -> None:
    """A (Shanghai), B (about 9.5 km east of A), F (Beijing, about 1070 km), N (no
    coordinates).  Code c1: A then F an hour later (about 1070 km/h); c2: A then B an hour
    later (9.5 km/h); c3: A then N.  Person p1: A then B two minutes later (285 km/h).
    Denied at A lane-1 at minutes 0, 1, 2, 4 (one burst of 4), 20, 30; at A lane-2 at 0, 6,
    12; at F lane-1 at 0, 1, 2."""
    city = City(con)
    await city.site("A", lat=31.2304, lon=121.4737)
    await city.site("B", lat=31.2304, lon=121.5737)
    await city.site("F", lat=39.9042, lon=116.4074)
    await city.site("N")
    await city.scan("A", None, minutes(0), cti="c1")
    await city.scan("F", None, minutes(60), cti="c1")
    await city.scan("A", None, minutes(0), cti="c2")
    await city.scan("B", None, minutes(60), cti="c2")
    await city.scan("A", None, minutes(0), cti="c3")
    await city.scan("N", None, minutes(1), cti="c3")
    await city.scan("A", key("p1"), minutes(0))
    await city.scan("B", key("p1"), minutes(2))
    for m in (0, 1, 2, 4, 20, 30):
        await city.scan("A", None, minutes(m), verdict="deny", reason="bad_signature")
    for m in (0, 6, 12):
        await city.scan("A", None, minutes(m), verdict="deny", lane_id="lane-2")
    for m in (0, 1, 2):
        await city.scan("F", None, minutes(m), verdict="deny", reason="expired")


PARAMS = AnomaliesParams(
    since=at(-1), until=at(5), max_speed_kmh=150, burst_count=3, burst_minutes=5
)


async def test_impossible_travel_and_denied_bursts(con: asyncpg.Connection) -> None:
    """c1 and p1 travel too fast, c2 does not, c3 has no coordinates to compare; the denied
    scans at A lane-1 make one merged burst of four, F lane-1 one of three, A lane-2 none."""
    await build(con)
    report = await anomalies(con, Scope.everywhere(), PARAMS)
    travel = [(t.by, t.identity, t.from_site_id, t.to_site_id) for t in report.travel]
    assert travel == [("person", key("p1"), "A", "B"), ("code", "c1", "A", "F")]
    p1 = report.travel[0]
    assert 9 < p1.distance_km < 10
    assert p1.speed_kmh is not None and 270 < p1.speed_kmh < 300
    bursts = [(b.site_id, b.lane_id, b.first_ts, b.last_ts, b.denied) for b in report.bursts]
    assert bursts == [
        ("A", "lane-1", minutes(0), minutes(4), 4),
        ("F", "lane-1", minutes(0), minutes(2), 3),
    ]
    assert report.bursts[0].reasons == {"bad_signature": 4}


async def test_scope_reads_only_its_sites(con: asyncpg.Connection) -> None:
    """Scope {A, B}: c1's hop to F is not seen (F is out of scope), p1's is; no burst at F."""
    await build(con)
    report = await anomalies(con, Scope.sites({"A", "B"}), PARAMS)
    assert [(t.by, t.identity) for t in report.travel] == [("person", key("p1"))]
    assert {b.site_id for b in report.bursts} == {"A"}
