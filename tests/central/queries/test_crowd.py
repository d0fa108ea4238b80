"""Crowd series and occupancy (central/queries/crowd.py) on visits placed at known times."""

from __future__ import annotations

import asyncpg
import pytest

from suishen.central.errors import BadRequest, NotFound
from suishen.central.queries.crowd import CrowdParams, OccupancyParams, crowd, occupancy
from suishen.central.scope import Scope
from tests.central.queries.citykit import City, at, key


async def build(con: asyncpg.Connection) -> None:
    """Site A (soft 2, hard 3) and B (no capacity), both in district D1.  At A: p1 0-2 h,
    p2 0.5-1.5, p3 1-3, p4 1.5-1.75 (enters as p2 leaves), p5 1.6-1.7 in zone 'hall'.
    At B: p6 0-3."""
    city = City(con)
    await city.site("A", district="D1", capacity_soft=2, capacity_hard=3)
    await city.site("B", district="D1")
    await city.visit("A", key("p1"), 0, 2)
    await city.visit("A", key("p2"), 0.5, 1)
    await city.visit("A", key("p3"), 1, 2)
    await city.visit("A", key("p4"), 1.5, 0.25)
    await city.visit("A", key("p5"), 1.6, 0.1, zone="hall")
    await city.visit("B", key("p6"), 0, 3)
    await city.derive()


async def test_site_series_has_occupancy_peaks_entries_and_breaches(
    con: asyncpg.Connection,
) -> None:
    """Hourly buckets over [0 h, 3 h): occupancy at each start (an entry exactly at a start
    counts), the peak within (a leave and an entry at one instant never add up), entries,
    and breaches of the soft (3 > 2) and hard (4 > 3) capacity."""
    await build(con)
    series = await crowd(
        con, Scope.everywhere(), CrowdParams(site_id="A", since=at(0), until=at(3))
    )
    got = [
        (b.start, b.occupancy, b.peak, b.entries, b.over_soft, b.over_hard) for b in series.buckets
    ]
    assert got == [
        (at(0), 1, 2, 2, False, False),
        (at(1), 3, 4, 3, True, True),
        (at(2), 1, 1, 0, False, False),
    ]
    assert (series.peak, series.peak_at, series.soft_breaches, series.hard_breaches) == (
        4,
        at(1),
        1,
        1,
    )


async def test_district_sums_its_sites_and_scope_limits_it(con: asyncpg.Connection) -> None:
    """District D1 adds B's visitor to every bucket (no capacity: B has none); a scope of B
    alone sees only B in the district and no site A at all."""
    await build(con)
    series = await crowd(
        con, Scope.everywhere(), CrowdParams(district="D1", since=at(0), until=at(3))
    )
    assert series.site_ids == ("A", "B")
    assert [b.peak for b in series.buckets] == [3, 5, 2]
    assert series.capacity_hard is None
    only_b = await crowd(
        con, Scope.sites({"B"}), CrowdParams(district="D1", since=at(0), until=at(3))
    )
    assert only_b.site_ids == ("B",)
    assert [b.peak for b in only_b.buckets] == [1, 1, 1]
    with pytest.raises(NotFound):
        await crowd(con, Scope.sites({"B"}), CrowdParams(site_id="A", since=at(0), until=at(3)))
    with pytest.raises(BadRequest):
        await crowd(con, Scope.everywhere(), CrowdParams(since=at(0), until=at(3)))


async def test_occupancy_at_a_moment_by_zone(con: asyncpg.Connection) -> None:
    """At 1.6 h four people are inside A (one in the hall); at 1.5 h p2 has left and p4 has
    come in (3); out of scope is NotFound."""
    await build(con)
    now = await occupancy(con, Scope.everywhere(), OccupancyParams(site_id="A", at=at(1.6)))
    assert (now.inside, [(z.zone, z.inside) for z in now.zones]) == (
        4,
        [("hall", 1), ("main", 3)],
    )
    earlier = await occupancy(con, Scope.everywhere(), OccupancyParams(site_id="A", at=at(1.5)))
    assert earlier.inside == 3
    with pytest.raises(NotFound):
        await occupancy(con, Scope.sites({"B"}), OccupancyParams(site_id="A", at=at(1.6)))
