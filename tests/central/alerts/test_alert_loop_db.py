"""The alert loop at the hub on a real PostgreSQL: every (state, action) pair through
``advance``, deadlines per route and key site, overdue and reminder flags, site scope."""

from __future__ import annotations

import datetime as dt
import itertools

import asyncpg
import pytest
from structlog.testing import capture_logs

from suishen.central.alerts.loop import advance, store_deadlines
from suishen.central.alerts.sender import log_reminders
from suishen.central.alerts.settings import AlertsSection
from suishen.central.errors import BadRequest, Conflict, NotFound
from suishen.central.queries.alerts import InboxParams, alert_detail, alert_view, inbox
from suishen.central.scope import Scope
from suishen.protocol.alert_loop import TRANSITIONS, AlertAction
from suishen.protocol.vocabulary import AlertStep
from tests.central.hubkit import OTHER_SITE, SITE

from .kit import raise_alert, sites

EVERYWHERE = Scope.everywhere()


async def test_every_state_and_action_pair_through_advance(db_pool: asyncpg.Pool) -> None:
    """For every (state, action) pair: the table's step moves the alert and adds one timeline
    row with who, when and the note; any other pair is a Conflict that changes nothing."""
    await sites(db_pool)
    for state, action in itertools.product(AlertStep, AlertAction):
        alert_id = await raise_alert(db_pool)
        await db_pool.execute("UPDATE alerts SET state = $2 WHERE alert_id = $1", alert_id, state)
        before = await db_pool.fetchval(
            "SELECT count(*) FROM alert_events WHERE alert_id = $1", alert_id
        )
        async with db_pool.acquire() as con:
            if action in TRANSITIONS[state]:
                view = await advance(con, EVERYWHERE, alert_id, action, "alice", f"{action} ok")
                assert view.state == TRANSITIONS[state][action]
                last = await con.fetchrow(
                    "SELECT step, actor, note, ts FROM alert_events WHERE alert_id = $1 "
                    "ORDER BY event_id DESC LIMIT 1",
                    alert_id,
                )
                assert (last["step"], last["actor"], last["note"]) == (
                    view.state,
                    "alice",
                    f"{action} ok",
                )
                assert last["ts"] is not None
                expected = before + 1
            else:
                with pytest.raises(Conflict):
                    await advance(con, EVERYWHERE, alert_id, action, "alice", "nope")
                assert (await alert_view(con, EVERYWHERE, alert_id)).state == state
                expected = before
            count = await con.fetchval(
                "SELECT count(*) FROM alert_events WHERE alert_id = $1", alert_id
            )
            assert count == expected, (state, action)


async def test_the_whole_loop_leaves_a_timeline(db_pool: asyncpg.Pool) -> None:
    """received -> ... -> closed: each step in the timeline with its actor and note, dispatch
    with the route it went to, each step's deadline the next step's, no action after closed."""
    await sites(db_pool)
    alert_id = await raise_alert(db_pool)
    async with db_pool.acquire() as con:
        await advance(con, EVERYWHERE, alert_id, "accept", "alice", "seen")
        view = await advance(
            con, EVERYWHERE, alert_id, "dispatch", "alice", "to city ops", route="city_ops"
        )
        assert view.dispatched_to == "city_ops"
        await advance(con, EVERYWHERE, alert_id, "handle", "bob", "handled on site")
        await advance(con, EVERYWHERE, alert_id, "feed_back", "bob", "reported")
        view = await advance(con, EVERYWHERE, alert_id, "close", "alice", "done")
        assert view.actions == () and view.next_step is None and not view.overdue
        detail = await alert_detail(con, EVERYWHERE, alert_id)
    steps = [(e.step, e.actor, e.note, e.route) for e in detail.timeline]
    assert steps == [
        ("received", "gateway:gw-a", "", None),
        ("accepted", "alice", "seen", None),
        ("dispatched", "alice", "to city ops", "city_ops"),
        ("handled", "bob", "handled on site", None),
        ("fed_back", "bob", "reported", None),
        ("closed", "alice", "done", None),
    ]
    deadlines = [e.deadline for e in detail.timeline]
    a = detail.alert
    assert deadlines == [a.accept_by, a.dispatch_by, a.handle_by, a.feedback_by, None, None]


async def test_bad_input_to_advance_is_refused(db_pool: asyncpg.Pool) -> None:
    """An unknown action or route, a route on a non-dispatch, an overlong note: BadRequest,
    and the alert is unchanged."""
    await sites(db_pool)
    alert_id = await raise_alert(db_pool)
    async with db_pool.acquire() as con:
        for kwargs in (
            {"action": "explode"},
            {"action": "accept", "route": "police"},
            {"action": "dispatch", "route": "army"},
            {"action": "accept", "note": "x" * 2001},
            {"action": "accept", "actor": ""},
        ):
            args = {"action": "accept", "actor": "alice", "note": "", **kwargs}
            with pytest.raises(BadRequest):
                await advance(
                    con,
                    EVERYWHERE,
                    alert_id,
                    args["action"],
                    args["actor"],
                    args["note"],
                    route=args.get("route"),
                )
        assert (await alert_view(con, EVERYWHERE, alert_id)).state == "received"


@pytest.mark.parametrize(
    ("key_site", "route", "accept_s"),
    [(True, "police", 60), (False, "police", 180), (True, "staff", 300), (False, "city_ops", 300)],
)
async def test_deadlines_per_route_and_key_site(
    db_pool: asyncpg.Pool, key_site: bool, route: str, accept_s: int
) -> None:
    """Police accept within 1 minute at a key site and 3 minutes elsewhere; other routes 5
    minutes; every alert dispatched within 15 minutes, handled and fed back within 24 hours
    of receipt; the received step records the accept deadline."""
    await sites(db_pool, key_site=key_site)
    alert_id = await raise_alert(db_pool, route=route)
    async with db_pool.acquire() as con:
        view = await alert_view(con, EVERYWHERE, alert_id)
        received = await con.fetchval(
            "SELECT deadline FROM alert_events WHERE alert_id = $1 AND step = 'received'",
            alert_id,
        )
    assert view.accept_by - view.received_at == dt.timedelta(seconds=accept_s)
    assert view.dispatch_by - view.received_at == dt.timedelta(minutes=15)
    assert view.handle_by - view.received_at == dt.timedelta(hours=24)
    assert view.feedback_by - view.received_at == dt.timedelta(hours=24)
    assert received == view.accept_by
    assert (view.next_step, view.due_at) == ("accepted", view.accept_by)


async def test_configured_deadlines_reach_new_alerts(db_pool: asyncpg.Pool) -> None:
    """The migration's rows are the config defaults (writing them changes nothing); a
    configured value is what the next alert gets."""
    await sites(db_pool, key_site=True)
    seeded = await db_pool.fetch("SELECT * FROM alert_deadlines ORDER BY route")
    async with db_pool.acquire() as con:
        await store_deadlines(con, AlertsSection())
        assert await con.fetch("SELECT * FROM alert_deadlines ORDER BY route") == seeded
        await store_deadlines(con, AlertsSection(police_accept_key_site_s=30))
    alert_id = await raise_alert(db_pool)
    async with db_pool.acquire() as con:
        view = await alert_view(con, EVERYWHERE, alert_id)
    assert view.accept_by - view.received_at == dt.timedelta(seconds=30)


async def test_overdue_and_reminder_flags_and_the_reminder_pass(db_pool: asyncpg.Pool) -> None:
    """An alert past its next deadline is overdue (and found by the overdue filter); one
    inside the last fifth before its deadline is due soon; the reminder pass logs each
    alert's step once."""
    await sites(db_pool)
    late, soon, fresh = [await raise_alert(db_pool) for _ in range(3)]
    await db_pool.execute(
        "UPDATE alerts SET received_at = now() - interval '10 minutes', "
        "accept_by = now() - interval '7 minutes' WHERE alert_id = $1",
        late,
    )
    await db_pool.execute(
        "UPDATE alerts SET received_at = now() - interval '170 seconds', "
        "accept_by = now() + interval '10 seconds' WHERE alert_id = $1",
        soon,
    )
    async with db_pool.acquire() as con:
        views = {v.alert_id: v for v in (await inbox(con, EVERYWHERE, InboxParams())).rows}
        overdue = await inbox(con, EVERYWHERE, InboxParams(overdue=True))
        on_time = await inbox(con, EVERYWHERE, InboxParams(overdue=False))
    assert (views[late].overdue, views[late].due_soon) == (True, False)
    assert (views[soon].overdue, views[soon].due_soon) == (False, True)
    assert (views[fresh].overdue, views[fresh].due_soon) == (False, False)
    assert [v.alert_id for v in overdue.rows] == [late]
    assert {v.alert_id for v in on_time.rows} == {soon, fresh}
    with capture_logs() as logs:
        assert await log_reminders(db_pool) == 2
    reminded = {(e["alert_id"], e["overdue"]) for e in logs if e["event"] == "alert_reminder"}
    assert reminded == {(late, True), (soon, False)}
    assert await log_reminders(db_pool) == 0  # once per step
    async with db_pool.acquire() as con:
        await advance(con, EVERYWHERE, late, "accept", "alice", "")
        await con.execute(
            "UPDATE alerts SET dispatch_by = now() - interval '1 second' WHERE alert_id = $1",
            late,
        )
    assert await log_reminders(db_pool) == 1  # the next step's reminder


async def test_inbox_filters_and_keyset_pages(db_pool: asyncpg.Pool) -> None:
    """Filters by state, route and site; pages newest first, each page's next_before leading
    to the next without gaps or repeats."""
    await sites(db_pool)
    made = [await raise_alert(db_pool, route="police") for _ in range(5)]
    made += [await raise_alert(db_pool, route="staff", site_id=OTHER_SITE) for _ in range(2)]
    async with db_pool.acquire() as con:
        await advance(con, EVERYWHERE, made[0], "accept", "alice", "")
        seen, before = [], None
        while True:
            page = await inbox(con, EVERYWHERE, InboxParams(limit=3, before_id=before))
            seen += [v.alert_id for v in page.rows]
            if page.next_before is None:
                break
            before = page.next_before
        assert seen == sorted(made, reverse=True)
        police = await inbox(con, EVERYWHERE, InboxParams(route="police"))
        assert {v.alert_id for v in police.rows} == set(made[:5])
        accepted = await inbox(con, EVERYWHERE, InboxParams(state="accepted"))
        assert [v.alert_id for v in accepted.rows] == [made[0]]
        site_b = await inbox(con, EVERYWHERE, InboxParams(site_id=OTHER_SITE))
        assert {v.alert_id for v in site_b.rows} == set(made[5:])
        evil = await inbox(con, EVERYWHERE, InboxParams(site_id="' OR 1=1 --"))
        assert evil.rows == ()
    for bad in ({"state": "x'; DROP TABLE alerts"}, {"route": "army"}, {"limit": 0}):
        with pytest.raises(BadRequest):
            InboxParams(**bad)


async def test_a_site_manager_sees_and_acts_on_own_sites_only(db_pool: asyncpg.Pool) -> None:
    """Scope of site-a: site-b's alert is not in the inbox, and reading it, its detail or
    taking any action on it is NotFound (never confirmed), with nothing changed."""
    await sites(db_pool)
    mine = await raise_alert(db_pool)
    theirs = await raise_alert(db_pool, site_id=OTHER_SITE)
    scope = Scope.sites({SITE})
    async with db_pool.acquire() as con:
        page = await inbox(con, scope, InboxParams())
        assert [v.alert_id for v in page.rows] == [mine]
        assert (await inbox(con, scope, InboxParams(site_id=OTHER_SITE))).rows == ()
        for call in (alert_view, alert_detail):
            with pytest.raises(NotFound):
                await call(con, scope, theirs)
        for action in AlertAction:
            with pytest.raises(NotFound):
                await advance(con, scope, theirs, action, "manager-a", "")
        with pytest.raises(NotFound):
            await advance(con, scope, 999_999, "accept", "manager-a", "")
        assert (await alert_view(con, EVERYWHERE, theirs)).state == "received"
        assert (await advance(con, scope, mine, "accept", "manager-a", "")).state == "accepted"
