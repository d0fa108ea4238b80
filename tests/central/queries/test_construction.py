"""Construction attendance (central/queries/construction.py) on visits placed by hand."""

from __future__ import annotations

import asyncpg

from suishen.central.queries.construction import ConstructionParams, construction
from suishen.central.scope import Scope
from tests.central.queries.citykit import City, at, key


async def build(con: asyncpg.Connection) -> None:
    """Site C: w1 (E1) 0-8 h and 24-30 h, w2 (E1) 0-4 h, w3 (E2) 2-5 h, w4 (E2) -1..1 h
    (half before the period), x1 let in though not on the roster 3-4 h; u1 refused twice
    (not_registered), w1 refused once for another reason.  Site C2: w9 0-2 h."""
    city = City(con)
    await city.site("C", kind="construction")
    await city.site("C2", kind="construction")
    for site, who, employer in (
        ("C", "w1", "E1"),
        ("C", "w2", "E1"),
        ("C", "w3", "E2"),
        ("C", "w4", "E2"),
        ("C2", "w9", "E9"),
    ):
        await con.execute(
            "INSERT INTO workers (site_id, person_key, employer, masked_name, version) "
            "VALUES ($1, $2, $3, '王*', 1)",
            site,
            key(who),
            employer,
        )
    await city.visit("C", key("w1"), 0, 8)
    await city.visit("C", key("w1"), 24, 6)
    await city.visit("C", key("w2"), 0, 4)
    await city.visit("C", key("w3"), 2, 3)
    await city.visit("C", key("w4"), -1, 2)
    await city.visit("C", key("x1"), 3, 1)
    await city.visit("C2", key("w9"), 0, 2)
    for ts in (1, 1.1):
        await city.scan("C", key("u1"), at(ts), verdict="deny", reason="not_registered")
    await city.scan("C", key("w1"), at(12), verdict="deny", reason="expired")
    await city.derive()


async def test_attendance_hours_employers_and_unregistered_attempts(
    con: asyncpg.Connection,
) -> None:
    """Hours are clipped to the period, days count distinct dates, employers sum their
    workers, and only not_registered refusals count as unregistered attempts."""
    await build(con)
    report = await construction(
        con, Scope.everywhere(), ConstructionParams(site_id="C", since=at(0), until=at(48))
    )
    got = {
        (w.person_key, w.employer, w.registered, w.visits, w.days, w.hours) for w in report.workers
    }
    assert got == {
        (key("w1"), "E1", True, 2, 2, 14.0),
        (key("w2"), "E1", True, 1, 1, 4.0),
        (key("w3"), "E2", True, 1, 1, 3.0),
        (key("w4"), "E2", True, 1, 1, 1.0),
        (key("x1"), "", False, 1, 1, 1.0),
    }
    assert [(e.employer, e.workers, e.worker_days, e.hours) for e in report.employers] == [
        ("", 1, 1, 1.0),
        ("E1", 2, 3, 18.0),
        ("E2", 2, 2, 4.0),
    ]
    assert [(u.person_key, u.attempts, u.first_ts) for u in report.unregistered] == [
        (key("u1"), 2, at(1))
    ]


async def test_scope_keeps_other_sites_out(con: asyncpg.Connection) -> None:
    """Every construction site in scope C2: w9 alone; C's workers never appear."""
    await build(con)
    report = await construction(
        con, Scope.sites({"C2"}), ConstructionParams(since=at(0), until=at(48))
    )
    assert [(w.site_id, w.person_key) for w in report.workers] == [("C2", key("w9"))]
    assert report.unregistered == ()
