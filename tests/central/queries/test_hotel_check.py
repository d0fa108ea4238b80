"""The weekly hotel check (central/queries/hotel_check.py) on stays and scans placed by hand."""

from __future__ import annotations

import asyncpg

from suishen.central.queries.hotel_check import HotelCheckParams, hotel_check
from suishen.central.scope import Scope
from tests.central.queries.citykit import City, at, key


async def stay(city: City, who: str, start: float, hours: float | None, **extra: object) -> None:
    await city.scan("H", key(who), at(start), "checkin", **extra)
    if hours is not None:
        await city.scan("H", key(who), at(start + hours), "checkout")


async def build(con: asyncpg.Connection) -> None:
    city = City(con)
    await city.site("H", kind="hotel")
    await city.site("H2", kind="hotel")
    await city.scan("H", key("g1"), at(1))  # in, registered 30 min later: covered
    await stay(city, "g1", 1.5, 20)
    await city.scan("H", key("g2"), at(2))  # in, never registered
    await city.scan("H", key("g3"), at(3))  # in, registered 2.5 h later: past the grace
    await stay(city, "g3", 5.5, 2)
    await stay(city, "m1", 4, 3, minor=True)  # minor, no guardian
    await stay(city, "m2", 4, 3, minor=True)  # minor, guardian g1 staying
    await stay(city, "f1", 6, 48, nationality="DEU")  # reported after 23 h
    await stay(city, "f2", 6, 48, nationality="DEU")  # reported after 25 h
    await stay(city, "f3", 6, None, nationality="USA")  # never reported
    await stay(city, "f4", 6, None, nationality="CHN")  # home guest: no report needed
    await stay(city, "w1", 7, 1)  # on the watchlist
    await city.scan("H2", key("g9"), at(2))  # H2's unregistered entry
    await city.derive()
    await con.execute(
        "UPDATE stays SET guardian_person_key = $1 WHERE person_key = $2", key("g1"), key("m2")
    )
    for who, hours in (("f1", 23), ("f2", 25)):
        await con.execute(
            "UPDATE stays SET reported_at = checkin_ts + make_interval(hours => $2) "
            "WHERE person_key = $1",
            key(who),
            hours,
        )
    await con.execute(
        "INSERT INTO watchlist (person_key, level, route, version) "
        "VALUES ($1, 'notify', 'police', 1)",
        key("w1"),
    )


async def test_weekly_check_flags_exactly_the_constructed_cases(con: asyncpg.Connection) -> None:
    """Unregistered entries (none within the grace), watched guests, a minor without a
    staying guardian, foreign guests reported after 24 h or never; the rest pass."""
    await build(con)
    params = HotelCheckParams(site_id="H", week_start=at(0), now=at(72))
    (check,) = await hotel_check(con, Scope.everywhere(), params)
    assert check.site_id == "H"
    assert (check.stays, check.entering) == (9, 3)
    assert [(f.person_key, f.ts) for f in check.unregistered] == [
        (key("g2"), at(2)),
        (key("g3"), at(3)),
    ]
    assert [f.person_key for f in check.watched_staying] == [key("w1")]
    assert [f.person_key for f in check.minors_unaccompanied] == [key("m1")]
    assert sorted(f.person_key for f in check.foreign_unreported) == sorted([key("f2"), key("f3")])


async def test_scope_returns_only_its_hotels(con: asyncpg.Connection) -> None:
    """A scope of H2 checks H2 alone, and asking for H under it gives nothing."""
    await build(con)
    checks = await hotel_check(
        con, Scope.sites({"H2"}), HotelCheckParams(week_start=at(0), now=at(72))
    )
    assert [(c.site_id, [f.person_key for f in c.unregistered]) for c in checks] == [
        ("H2", [key("g9")])
    ]
    assert (
        await hotel_check(con, Scope.sites({"H2"}), HotelCheckParams(site_id="H", week_start=at(0)))
        == ()
    )
