"""Contact tracing (central/queries/trace.py) on a city whose contacts are known by construction."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from suishen.central.errors import BadRequest
from suishen.central.queries.trace import TraceParams, person_key_for, trace
from suishen.central.scope import Scope
from suishen.protocol import person
from tests.central.queries.citykit import City, at, key

X = key("index")


async def build(con: asyncpg.Connection) -> TraceParams:
    """Window [T0+24h, T0+48h).  X at A 30-32 h and at B 24-25 h (in exactly at the window's
    start: inside) and B 48-49 h (in exactly at its end: outside)."""
    city = City(con)
    await city.site("A")
    await city.site("B")
    await city.visit("A", X, 30, 2)
    await city.visit("B", X, 24, 1)
    await city.visit("B", X, 48, 1)
    await city.visit("A", key("c1"), 31, 2)  # 60 min with X
    await city.visit("A", key("c2"), 31.75, 0.25)  # exactly the 15 min margin: counts
    await city.visit("A", key("c3"), 31.76, 1)  # 14.4 min: does not count
    await city.visit("A", key("c5"), 29.5, 0.75)  # 15 min, before X came in
    await city.visit("B", key("d1"), 24, 1)  # 60 min at B
    await city.visit("B", key("d2"), 48, 1)  # with X's visit outside the window
    await city.visit("A", key("d1"), 40, 1)  # d1 meets e1 (second degree) and c1 (first)
    await city.visit("A", key("e1"), 40, 1)
    await city.visit("A", key("c1"), 40, 0.5)
    await city.derive()
    return TraceParams(person_key=X, until=at(48), days=1, margin_minutes=15)


async def test_first_degree_contacts_ranked_by_overlap_with_margin_and_window_bounds(
    con: asyncpg.Connection,
) -> None:
    """Contacts overlapping by at least the margin (equal included) at the same site, ranked by
    overlap minutes then key; a visit in at the window's start is in, one at its end is out."""
    params = await build(con)
    result = await trace(con, Scope.everywhere(), params)
    assert [(v.site_id, v.in_ts) for v in result.visits] == [("B", at(24)), ("A", at(30))]
    got = [(c.person_key, c.degree, c.overlap_minutes, c.site_ids) for c in result.contacts]
    top, tied = sorted([key("c1"), key("d1")]), sorted([key("c2"), key("c5")])
    sites = {key("c1"): ("A",), key("d1"): ("B",)}
    assert got == [
        (top[0], 1, 60.0, sites[top[0]]),
        (top[1], 1, 60.0, sites[top[1]]),
        (tied[0], 1, 15.0, ("A",)),
        (tied[1], 1, 15.0, ("A",)),
    ]
    assert all(c.masked_name == "张*明" for c in result.contacts)


async def test_second_degree_goes_through_first_degree_contacts_only(
    con: asyncpg.Connection,
) -> None:
    """Second degree lists e1 (met d1 for 60 min) via d1 and c3 (under the margin with the
    index person, 60 min with c1) via c1, and never the index person or a first-degree
    contact (c1 also met d1)."""
    params = await build(con)
    result = await trace(
        con, Scope.everywhere(), msgspec.structs.replace(params, second_degree=True)
    )
    second = [
        (c.person_key, c.via_person_key, c.overlap_minutes)
        for c in result.contacts
        if c.degree == 2
    ]
    expected = sorted([(key("e1"), key("d1"), 60.0), (key("c3"), key("c1"), 60.0)])
    assert second == expected


async def test_scope_of_site_a_never_returns_site_b(con: asyncpg.Connection) -> None:
    """Scope.sites({"A"}): the index person's visits and the contacts at A only, at both
    degrees."""
    params = await build(con)
    result = await trace(
        con, Scope.sites({"A"}), msgspec.structs.replace(params, second_degree=True)
    )
    assert {v.site_id for v in result.visits} == {"A"}
    assert {s for c in result.contacts for s in c.site_ids} == {"A"}
    # d1 met the index person at B only: no first-degree contact here (d1 is second degree,
    # through c1 at A, which is A's data).
    assert key("d1") not in {c.person_key for c in result.contacts if c.degree == 1}


def test_person_key_for_a_document_and_a_bad_one() -> None:
    """A document becomes the protocol's person key; a document that names nobody is a 400."""
    pepper = b"p" * 32
    assert person_key_for(pepper, document_type="RIC", document_number="11010519491231002X") == (
        person.person_key(pepper, "RIC", "11010519491231002X")
    )
    with pytest.raises(BadRequest):
        person_key_for(pepper, document_type="PP", document_number="E1234567")
