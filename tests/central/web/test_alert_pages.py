"""The alerts inbox and alert page through the real web app (sessions, CSRF, scope): a site
manager takes an alert round the loop from the browser's forms; every alert route refuses
another site's alert with 404 and changes nothing; forged CSRF, bad filters and wrong content
types are 4xx; the platforms' callback is public on the web listener and answers JSON."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from suishen.central.alerts.sender import drain_once
from suishen.central.alerts.settings import AlertsSection
from suishen.central.queries.alerts import alert_detail
from suishen.central.scope import Scope
from suishen.protocol.alert_loop import AlertAction
from tests.central.alerts.kit import endpoint, raise_alert, sites
from tests.central.alerts.platform import Platform, post_callback
from tests.central.hubkit import OTHER_SITE, SITE

from .conftest import WebClient, WebClientFactory

EVERYWHERE = Scope.everywhere()


async def _state(pool: asyncpg.Pool, alert_id: int) -> tuple[str, int]:
    async with pool.acquire() as con:
        detail = await alert_detail(con, EVERYWHERE, alert_id)
    return detail.alert.state, len(detail.timeline)


async def _step(wc: WebClient, alert_id: int, action: str, **form: str):
    return await wc.client.post(
        f"/alerts/{alert_id}/{action}",
        data={"csrf_token": wc.csrf, **form},
        headers=wc.unsafe_headers(),
        allow_redirects=False,
    )


async def test_a_site_manager_takes_an_alert_round_the_loop(
    db_pool: asyncpg.Pool, web_client: WebClientFactory
) -> None:
    """Inbox (Chinese by default) lists the alert; each form step redirects back to the
    alert's page, which shows the timeline with the manager's name and notes."""
    await sites(db_pool)
    alert_id = await raise_alert(db_pool)
    wc = await web_client("site_manager", [SITE])
    inbox = await wc.client.get("/alerts")
    text = await inbox.text()
    assert inbox.status == 200
    assert f'href="/alerts/{alert_id}"' in text and "告警" in text and "接报" in text
    for action, form in (
        ("accept", {"note": "on it"}),
        ("dispatch", {"note": "to ops", "route": "city_ops"}),
        ("handle", {"note": "cleared"}),
        ("feed_back", {"note": "reported"}),
        ("close", {"note": "done"}),
    ):
        response = await _step(wc, alert_id, action, **form)
        assert response.status == 303, await response.text()
        assert response.headers["Location"] == f"/alerts/{alert_id}"
    page = await (await wc.client.get(f"/alerts/{alert_id}")).text()
    for note in ("on it", "to ops", "cleared", "reported", "done"):
        assert note in page
    assert wc.username in page and "城运中心" in page and "办结" in page
    assert 'name="csrf_token"' not in page.split("<main>")[1]  # closed: no action forms
    async with db_pool.acquire() as con:
        detail = await alert_detail(con, EVERYWHERE, alert_id)
    assert [e.actor for e in detail.timeline][1:] == [wc.username] * 5


async def test_overdue_flags_filters_and_the_english_switch(
    db_pool: asyncpg.Pool, web_client: WebClientFactory
) -> None:
    """An overdue alert is flagged in the inbox and on its page; overdue=yes lists only it;
    with the lang cookie 'en' the page is in English."""
    await sites(db_pool)
    late, fresh = await raise_alert(db_pool), await raise_alert(db_pool)
    await db_pool.execute(
        "UPDATE alerts SET accept_by = now() - interval '1 minute' WHERE alert_id = $1", late
    )
    wc = await web_client("site_manager", [SITE])
    text = await (await wc.client.get("/alerts?overdue=yes")).text()
    assert f'href="/alerts/{late}"' in text and f'href="/alerts/{fresh}"' not in text
    assert "已超时" in text
    wc.client.session.cookie_jar.update_cookies({"lang": "en"}, wc.client.make_url("/"))
    page = await (await wc.client.get(f"/alerts/{late}")).text()
    assert "Overdue" in page and "Timeline" in page


async def test_every_alert_route_refuses_another_sites_alert(
    db_pool: asyncpg.Pool, web_client: WebClientFactory
) -> None:
    """A manager of site-a: site-b's alert is not listed (even asked for by site), its page
    and every action are 404, and it stays unchanged."""
    await sites(db_pool)
    theirs = await raise_alert(db_pool, site_id=OTHER_SITE)
    wc = await web_client("site_manager", [SITE])
    for url in ("/alerts", f"/alerts?site={OTHER_SITE}", f"/alerts?site={OTHER_SITE}&state=open"):
        text = await (await wc.client.get(url)).text()
        assert f"/alerts/{theirs}" not in text
    assert (await wc.client.get(f"/alerts/{theirs}")).status == 404
    for action in AlertAction:
        response = await _step(wc, theirs, action.value, note="x", route="police")
        assert response.status == 404, action
    assert await _state(db_pool, theirs) == ("received", 1)


async def test_roles_read_and_act_as_allowed(
    db_pool: asyncpg.Pool, web_client: WebClientFactory
) -> None:
    """An analyst reads every site's alerts but may not act (403); an admin acts anywhere; a
    tenant has no alert pages (403)."""
    await sites(db_pool)
    theirs = await raise_alert(db_pool, site_id=OTHER_SITE)
    analyst = await web_client("analyst")
    assert (await analyst.client.get(f"/alerts/{theirs}")).status == 200
    assert (await _step(analyst, theirs, "accept")).status == 403
    assert await _state(db_pool, theirs) == ("received", 1)
    tenant = await web_client("tenant", [SITE])
    assert (await tenant.client.get("/alerts")).status == 403
    admin = await web_client("admin")
    assert (await _step(admin, theirs, "accept", note="admin")).status == 303
    assert await _state(db_pool, theirs) == ("accepted", 2)


async def test_forged_csrf_and_bad_input_change_nothing(
    db_pool: asyncpg.Pool, web_client: WebClientFactory
) -> None:
    """A missing or wrong CSRF token or a foreign Origin: 403; a JSON body, a repeated note, an
    overlong note, a route on an accept, an unknown route, an action the loop does not allow
    now, an unknown action: 4xx. Filters with SQL metacharacters, repeated or overlong values:
    400 or nothing found, never a 500. The alert is unchanged throughout."""
    await sites(db_pool)
    alert_id = await raise_alert(db_pool)
    wc = await web_client("site_manager", [SITE])
    url = f"/alerts/{alert_id}/accept"
    refused = [
        await wc.client.post(url, data={"note": "x"}, headers=wc.unsafe_headers()),
        await wc.client.post(url, data={"csrf_token": "forged"}, headers=wc.unsafe_headers()),
        await wc.client.post(
            url, data={"csrf_token": wc.csrf}, headers={"Origin": "https://evil.test"}
        ),
    ]
    assert [r.status for r in refused] == [403, 403, 403]
    bad = [
        (400, await wc.client.post(url, json={"note": "x"}, headers=wc.unsafe_headers(
            **{"X-CSRF-Token": wc.csrf}))),
        (400, await wc.client.post(url, data=[("csrf_token", wc.csrf), ("note", "a"),
                                              ("note", "b")], headers=wc.unsafe_headers())),
        (400, await _step(wc, alert_id, "accept", note="n" * 2001)),
        (400, await _step(wc, alert_id, "accept", route="police")),
        (409, await _step(wc, alert_id, "close")),
        (404, await _step(wc, alert_id, "explode")),
        (404, await _step(wc, 0, "accept")),
    ]  # fmt: skip
    for status, response in bad:
        assert response.status == status, (status, await response.text())
    assert await _state(db_pool, alert_id) == ("received", 1)
    assert (await _step(wc, alert_id, "accept")).status == 303
    assert (await _step(wc, alert_id, "dispatch", route="army")).status == 400
    assert await _state(db_pool, alert_id) == ("accepted", 2)
    for query, statuses in (
        ("state=x'%3B DROP TABLE alerts --", {400}),
        ("route=police' OR '1'='1", {400}),
        ("site=' OR 1=1 --", {200}),
        ("overdue=maybe", {400}),
        ("before=1;2", {400}),
        ("state=open&state=closed", {400}),
        ("site=" + "s" * 200, {400}),
        ("before=" + "9" * 30, {400}),
    ):
        response = await wc.client.get(f"/alerts?{query}")
        assert response.status in statuses, (query, response.status)
        if response.status == 200:
            assert f"/alerts/{alert_id}" not in await response.text()
    assert (await wc.client.get("/alerts/abc")).status == 404
    assert (await wc.client.get("/alerts/" + "9" * 40)).status == 404


async def test_the_callback_is_public_on_the_web_listener(
    db_pool: asyncpg.Pool, web_server: TestServer, tmp_path: Path
) -> None:
    """No session needed: a signed accept moves the alert (actor platform:police, JSON
    answer); a bad signature is a JSON 403 and changes nothing."""
    await sites(db_pool)
    secret = await endpoint(db_pool, "police", "http://127.0.0.1:9/unused", tmp_path)
    alert_id = await raise_alert(db_pool)
    base = str(web_server.make_url("")).rstrip("/")
    path = f"/hooks/alerts/{alert_id}"
    status, body = await post_callback(base, path, b"x" * 32, {"action": "accept"})
    assert status == 403 and json.loads(body)["code"] == "forbidden"
    assert await _state(db_pool, alert_id) == ("received", 1)
    status, body = await post_callback(base, path, secret, {"action": "accept", "note": "ok"})
    assert (status, json.loads(body)["state"]) == (200, "accepted")
    async with db_pool.acquire() as con:
        detail = await alert_detail(con, EVERYWHERE, alert_id)
    assert detail.timeline[-1].actor == "platform:police"


async def test_the_alert_page_shows_every_delivery_attempt(
    db_pool: asyncpg.Pool, web_client: WebClientFactory, tmp_path: Path
) -> None:
    """A delivery refused once (500) then delivered: both attempts, with their response codes,
    are on the alert's page."""
    platform = Platform()
    await platform.start()
    try:
        await sites(db_pool)
        platform.secrets["police"] = await endpoint(
            db_pool, "police", f"{platform.url}/police", tmp_path
        )
        platform.failures["police"] = 1
        alert_id = await raise_alert(db_pool)
        async with aiohttp.ClientSession() as session:
            assert await drain_once(db_pool, session, AlertsSection()) == 1
            await db_pool.execute("UPDATE webhook_outbox SET next_at = now()")
            assert await drain_once(db_pool, session, AlertsSection()) == 1
    finally:
        await platform.close()
    wc = await web_client("site_manager", [SITE])
    page = await (await wc.client.get(f"/alerts/{alert_id}")).text()
    deliveries = page.split("推送记录")[1]
    assert "失败，将重试" in deliveries and "500" in deliveries
    assert "已送达" in deliveries and "204" in deliveries
