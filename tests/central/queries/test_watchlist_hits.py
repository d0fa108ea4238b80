"""Watchlist hits (central/queries/watchlist_hits.py) on alerts placed by hand."""

from __future__ import annotations

import datetime as dt

import asyncpg

from suishen.central.queries.watchlist_hits import WatchlistHitsParams, watchlist_hits
from suishen.central.scope import Scope
from tests.central.queries.citykit import City, at, key


async def alert(
    con: asyncpg.Connection,
    seq: int,
    site: str,
    hours: float,
    *,
    level: str = "deny",
    route: str = "police",
    state: str = "received",
    kind: str = "watchlist",
) -> None:
    await con.execute(
        "INSERT INTO alerts (gateway_id, seq, ts, site_id, lane_id, kind, route, level, "
        "person_key, state, accept_by, handle_by) "
        "VALUES ($1, $2, $3, $4, 'lane-1', $5, $6, $7, $8, $9, "
        "$3::timestamptz + interval '5 minutes', $3::timestamptz + interval '1 hour')",
        f"gw-{site}",
        seq,
        at(hours),
        site,
        kind,
        route,
        level,
        key(f"p{seq}"),
        state,
    )


async def build(con: asyncpg.Connection) -> None:
    """A: a deny/police hit at 1 h (received: overdue at 3 h), a notify/staff hit at 2 h
    (handled), a deny/police hit at 25 h (accepted, not handled by 26 h: overdue at 30 h);
    a capacity alert (not a hit); B: a deny/police hit at 2 h, one at 48 h (outside the
    period)."""
    city = City(con)
    await city.site("A")
    await city.site("B")
    await alert(con, 1, "A", 1)
    await alert(con, 2, "A", 2, level="notify", route="staff", state="handled")
    await alert(con, 3, "A", 25, state="accepted")
    await alert(con, 4, "A", 3, kind="capacity", route="staff")
    await alert(con, 5, "B", 2)
    await alert(con, 6, "B", 48)


async def test_hits_by_list_site_and_day_with_outcomes(con: asyncpg.Connection) -> None:
    """Only watchlist alerts in [since, until) count, newest first, grouped by list, site and
    day with their states; overdue follows the deadlines."""
    await build(con)
    result = await watchlist_hits(
        con,
        Scope.everywhere(),
        WatchlistHitsParams(since=at(0), until=at(48), now=at(30)),
    )
    assert result.total == 4
    assert [(h.ts, h.site_id, h.state, h.overdue) for h in result.hits] == [
        (at(25), "A", "accepted", True),
        (at(2), "B", "received", True),
        (at(2), "A", "handled", False),
        (at(1), "A", "received", True),
    ]
    assert [(c.key, c.hits, c.states) for c in result.by_list] == [
        ("deny/police", 3, {"accepted": 1, "received": 2}),
        ("notify/staff", 1, {"handled": 1}),
    ]
    assert [(c.key, c.hits) for c in result.by_site] == [("A", 3), ("B", 1)]
    days = sorted({at(h).date().isoformat() for h in (1, 2, 25)})
    assert [c.key for c in result.by_day] == days
    early = await watchlist_hits(
        con,
        Scope.everywhere(),
        WatchlistHitsParams(since=at(0), until=at(48), now=at(1) + dt.timedelta(minutes=1)),
    )
    assert not any(h.overdue for h in early.hits if h.ts == at(1))


async def test_scope_and_filters(con: asyncpg.Connection) -> None:
    """A scope of B sees B's hit only; a level filter keeps that level only."""
    await build(con)
    only_b = await watchlist_hits(
        con, Scope.sites({"B"}), WatchlistHitsParams(since=at(0), until=at(48))
    )
    assert [h.site_id for h in only_b.hits] == ["B"]
    notify = await watchlist_hits(
        con, Scope.everywhere(), WatchlistHitsParams(since=at(0), until=at(48), level="notify")
    )
    assert [h.level for h in notify.hits] == ["notify"]
