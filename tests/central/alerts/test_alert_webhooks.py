"""Webhooks end to end on loopback: the hub's sender delivers signed JSON to a real aiohttp
receiver playing the platforms, the platforms post signed accept / handle / feedback back,
and the alert goes round the whole loop; forged, stale, replayed or mistyped callbacks change
nothing; a failed delivery is retried and every attempt logged."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from suishen.central.alerts import callback
from suishen.central.alerts.loop import advance
from suishen.central.alerts.sender import alerts_ctx, drain_once
from suishen.central.alerts.settings import AlertsSection
from suishen.central.db import DB_POOL
from suishen.central.errors import error_middleware
from suishen.central.queries.alerts import alert_detail, alert_view
from suishen.central.scope import Scope

from .kit import endpoint, raise_alert, sites
from .platform import Platform, post_callback, signature

FAST = AlertsSection(
    outbox_poll_s=0.2,
    reminder_interval_s=0.5,
    webhook_timeout_s=5.0,
    webhook_retry_initial_s=0.05,
    webhook_retry_cap_s=0.2,
)
EVERYWHERE = Scope.everywhere()


@dataclasses.dataclass
class Rig:
    pool: asyncpg.Pool
    platform: Platform
    hub_url: str
    tmp: Path

    async def state(self, alert_id: int) -> str:
        async with self.pool.acquire() as con:
            return (await alert_view(con, EVERYWHERE, alert_id)).state

    async def timeline(self, alert_id: int) -> list[tuple[str, str, str]]:
        async with self.pool.acquire() as con:
            detail = await alert_detail(con, EVERYWHERE, alert_id)
        return [(e.step, e.actor, e.note) for e in detail.timeline]


@contextlib.asynccontextmanager
async def hub(pool: asyncpg.Pool, section: AlertsSection) -> AsyncIterator[str]:
    """The callback route and the sender on a loopback listener, as the hub runs them."""
    app = web.Application(middlewares=[error_middleware])
    app[DB_POOL] = pool
    callback.add_routes(app)
    app.cleanup_ctx.append(alerts_ctx(section))
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Rig]:
    platform = Platform()
    await platform.start()
    await sites(db_pool, key_site=True)
    for route in ("police", "city_ops"):
        platform.secrets[route] = await endpoint(
            db_pool, route, f"{platform.url}/{route}", tmp_path
        )
    try:
        async with hub(db_pool, FAST) as url:
            yield Rig(db_pool, platform, url, tmp_path)
    finally:
        await platform.close()


async def test_an_alert_goes_round_the_whole_loop(rig: Rig) -> None:
    """Received -> webhook to the police platform (signature checked by the receiver) ->
    police accept through the signed callback -> dispatched by a user to city operations ->
    webhook to city operations -> it posts handled and feedback -> closed by the user. Every
    step in the timeline with its actor and note; every delivery logged as delivered."""
    alert_id = await raise_alert(rig.pool)
    route, payload = await rig.platform.next()
    assert (route, payload["event"], payload["alert"]["alert_id"]) == (
        "police",
        "alert.received",
        alert_id,
    )
    assert payload["alert"]["state"] == "received"
    assert payload["alert"]["deadlines"]["accept_by"]
    assert payload["callback"] == f"/hooks/alerts/{alert_id}"
    police = rig.platform.secrets["police"]
    status, answer = await post_callback(
        rig.hub_url, payload["callback"], police, {"action": "accept", "note": "unit 12"}
    )
    assert (status, json.loads(answer)["state"]) == (200, "accepted")

    async with rig.pool.acquire() as con:
        await advance(con, EVERYWHERE, alert_id, "dispatch", "alice", "crowd", route="city_ops")
    route, payload = await rig.platform.next()
    assert (route, payload["event"], payload["route"]) == (
        "city_ops",
        "alert.dispatched",
        "city_ops",
    )
    assert payload["alert"]["dispatched_to"] == "city_ops"
    ops = rig.platform.secrets["city_ops"]
    for action, note in (("handle", "cleared"), ("feed_back", "all well")):
        status, _ = await post_callback(
            rig.hub_url, payload["callback"], ops, {"action": action, "note": note}
        )
        assert status == 200
    async with rig.pool.acquire() as con:
        await advance(con, EVERYWHERE, alert_id, "close", "alice", "closed")
        detail = await alert_detail(con, EVERYWHERE, alert_id)
    assert [(e.step, e.actor, e.note) for e in detail.timeline] == [
        ("received", "gateway:gw-a", ""),
        ("accepted", "platform:police", "unit 12"),
        ("dispatched", "alice", "crowd"),
        ("handled", "platform:city_ops", "cleared"),
        ("fed_back", "platform:city_ops", "all well"),
        ("closed", "alice", "closed"),
    ]
    assert [(d.route, d.step, d.status, d.response_code) for d in detail.deliveries] == [
        ("police", "received", "delivered", 204),
        ("city_ops", "dispatched", "delivered", 204),
    ]
    assert detail.pending_deliveries == 0
    assert rig.platform.refused == 0


async def test_forged_stale_replayed_or_mistyped_callbacks_change_nothing(rig: Rig) -> None:
    """A wrong secret, another route's secret, a timestamp 6 minutes old, no signature, a
    malformed header, another content type, a body over 16 KiB, bad JSON, an action the
    platform may not take, a step the loop does not allow, a replay of a good callback: each
    a 4xx, and the alert's state and timeline are unchanged."""
    alert_id = await raise_alert(rig.pool)
    await rig.platform.next()
    path = f"/hooks/alerts/{alert_id}"
    police, ops = rig.platform.secrets["police"], rig.platform.secrets["city_ops"]
    accept = {"action": "accept", "note": "x"}
    body = json.dumps(accept).encode()
    before = await rig.timeline(alert_id)
    cases = [
        (403, {"secret": b"w" * 32, "document": accept}),
        (403, {"secret": ops, "document": accept}),  # city ops is not this alert's route
        (403, {"secret": police, "document": accept, "timestamp": int(time.time()) - 360}),
        (403, {"secret": police, "document": accept, "timestamp": int(time.time()) + 360}),
        (403, {"secret": police, "document": accept, "header": ""}),
        (403, {"secret": police, "document": accept, "header": "t=abc,v1=00"}),
        (403, {"secret": police, "document": accept, "header": "garbage"}),
        (415, {"secret": police, "document": accept, "content_type": "text/plain"}),
        (
            415,
            {
                "secret": police,
                "document": accept,
                "content_type": "application/x-www-form-urlencoded",
            },
        ),
        (413, {"secret": police, "document": None, "raw": b'{"action": "' + b"a" * 17000 + b'"}'}),
        (400, {"secret": police, "document": None, "raw": b"{not json"}),
        (400, {"secret": police, "document": {"action": "close"}}),
        (400, {"secret": police, "document": {"action": "accept", "extra": 1}}),
        (400, {"secret": police, "document": {"action": "accept", "note": "n" * 2001}}),
        (409, {"secret": police, "document": {"action": "handle"}}),  # not dispatched yet
    ]
    for expected, kwargs in cases:
        secret = kwargs.pop("secret")
        document = kwargs.pop("document")
        status, answer = await post_callback(rig.hub_url, path, secret, document, **kwargs)
        assert status == expected, (expected, kwargs, answer)
        assert await rig.state(alert_id) == "received"
        assert await rig.timeline(alert_id) == before
    # a signed callback for an alert that does not exist looks like a bad signature
    status, _ = await post_callback(rig.hub_url, "/hooks/alerts/999999", police, accept)
    assert status == 403
    # the good one once, then its exact replay, to this alert and to another one (the
    # signature covers the body, not the path: only the replay guard stops the second)
    other = await raise_alert(rig.pool)
    await rig.platform.next()
    header = signature(police, body)
    assert (await post_callback(rig.hub_url, path, police, None, raw=body, header=header))[0] == 200
    after = await rig.timeline(alert_id)
    for target in (path, f"/hooks/alerts/{other}"):
        status, _ = await post_callback(rig.hub_url, target, police, None, raw=body, header=header)
        assert status == 409
    assert await rig.timeline(alert_id) == after
    assert [step for step, _, _ in after] == ["received", "accepted"]
    assert await rig.state(other) == "received"


async def test_a_failed_delivery_is_retried_and_every_attempt_logged(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The receiver answers 500 once: the attempt is logged as failed with its code and the
    delivery waits a backoff delay; the next attempt is delivered. A receiver that keeps
    failing is given up after webhook_max_attempts, logged as gave_up."""
    platform = Platform()
    await platform.start()
    try:
        await sites(db_pool)
        platform.secrets["police"] = await endpoint(
            db_pool, "police", f"{platform.url}/police", tmp_path
        )
        platform.failures["police"] = 1
        section = dataclasses.replace(FAST, webhook_retry_initial_s=30.0, webhook_retry_cap_s=60.0)
        alert_id = await raise_alert(db_pool)
        async with aiohttp.ClientSession() as session:
            assert await drain_once(db_pool, session, section) == 1
            assert await drain_once(db_pool, session, section) == 0  # waits its backoff
            waits = await db_pool.fetchval(
                "SELECT next_at - now() FROM webhook_outbox WHERE alert_id = $1", alert_id
            )
            assert waits.total_seconds() > 0
            await db_pool.execute("UPDATE webhook_outbox SET next_at = now()")
            assert await drain_once(db_pool, session, section) == 1
            async with db_pool.acquire() as con:
                detail = await alert_detail(con, EVERYWHERE, alert_id)
            assert [(d.attempt, d.status, d.response_code) for d in detail.deliveries] == [
                (1, "failed", 500),
                (2, "delivered", 204),
            ]
            assert detail.pending_deliveries == 0
            assert platform.received.qsize() == 1

            platform.failures["police"] = 10
            doomed = await raise_alert(db_pool)
            section = dataclasses.replace(section, webhook_max_attempts=2)
            for _ in range(2):
                await db_pool.execute("UPDATE webhook_outbox SET next_at = now()")
                assert await drain_once(db_pool, session, section) == 1
            await db_pool.execute("UPDATE webhook_outbox SET next_at = now()")
            assert await drain_once(db_pool, session, section) == 0
            async with db_pool.acquire() as con:
                detail = await alert_detail(con, EVERYWHERE, doomed)
            assert [d.status for d in detail.deliveries] == ["failed", "gave_up"]
            assert detail.pending_deliveries == 0
    finally:
        await platform.close()


async def test_deliveries_queued_while_the_sender_was_down_are_sent_when_it_starts(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The outbox is a table: alerts raised while no sender runs (a hub restart) are
    delivered once it starts, each exactly once."""
    platform = Platform()
    await platform.start()
    try:
        await sites(db_pool)
        platform.secrets["police"] = await endpoint(
            db_pool, "police", f"{platform.url}/police", tmp_path
        )
        made = {await raise_alert(db_pool) for _ in range(3)}
        async with hub(db_pool, FAST):
            got = {(await platform.next())[1]["alert"]["alert_id"] for _ in range(3)}
            await asyncio.sleep(0.5)
        assert got == made
        assert platform.received.empty()
        count = await db_pool.fetchval("SELECT count(*) FROM webhook_deliveries")
        assert count == 3
    finally:
        await platform.close()
