"""The alert loop in Chromium: a watchlisted person is stopped at a simulated gateway, the alert
reaches the hub on the fast lane and its "received" webhook reaches the police platform (a
receiver on loopback); the site manager accepts it and dispatches it to city operations from
the alert page, and the signed "dispatched" webhook arrives there."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
from playwright.async_api import expect

from suishen.central.alerts.settings import AlertsSection
from suishen.central.store.lists import watchlist_add
from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.alerts.kit import endpoint
from tests.central.alerts.platform import Platform
from tests.e2e.browser.conftest import WatchedPage
from tests.e2e.browser.hub_site import SITE_ID, hub_web, site_uploading
from tests.integration.gateway_fixtures import cnid, ric

FAST = AlertsSection(outbox_poll_s=0.2, reminder_interval_s=1.0, webhook_retry_initial_s=0.05)
IDN = cnid(dt.date(1979, 3, 4), "305")
FULL_NAME = "王小明"


async def test_accept_and_dispatch_an_alert_from_the_alert_page(
    db_pool: asyncpg.Pool, page: WatchedPage, tmp_path: Path
) -> None:
    """Watchlist hit at the door -> alert in the inbox -> accepted and dispatched from its page
    (CSRF-protected forms) -> both webhooks signed and received, the timeline shows who did
    what, the deliveries are listed; no name or number is sent to the platform."""
    platform = Platform()
    await platform.start()
    try:
        for route in ("police", "city_ops"):
            platform.secrets[route] = await endpoint(
                db_pool, route, f"{platform.url}/{route}", tmp_path
            )
        async with hub_web(db_pool) as hub, site_uploading(db_pool, tmp_path, alerts=FAST) as site:
            username = await hub.user("wang", Role.SITE_MANAGER, [SITE_ID])
            pepper = site.service.config.privacy.read_pepper(site.site.environ)
            key = person_key(pepper, "RIC", IDN, "CHN")
            async with db_pool.acquire() as con:
                version = await watchlist_add(
                    con, key, level="deny", route="police", reason="wanted", actor="test"
                )
            async with asyncio.timeout(15):  # the signed watchlist reaches the gateway
                while site.service.lists.version("watchlist") < version:  # noqa: ASYNC110 - the gateway's state
                    await asyncio.sleep(0.05)
            await site.scan("in-1", ric(IDN))
            route, received = await platform.next(15)
            assert (route, received["event"]) == ("police", "alert.received")
            alert_id = received["alert"]["alert_id"]

            p = page.page
            await p.goto(hub.url + "/login")
            await p.fill("input[name=username]", username)
            await p.fill("input[name=password]", hub.password)
            await p.click("button[type=submit]")
            await p.goto(hub.url + "/alerts")
            link = p.locator(f"a[href='/alerts/{alert_id}']").first
            await expect(link).to_be_visible()
            await page.screenshot("alerts-inbox.png", full_page=True)

            await link.click()
            await expect(p).to_have_url(f"{hub.url}/alerts/{alert_id}")
            accept = p.locator(f"form[action='/alerts/{alert_id}/accept']")
            await accept.locator("textarea[name=note]").fill("值班员已受理")
            await accept.locator("button").click()
            dispatch = p.locator(f"form[action='/alerts/{alert_id}/dispatch']")
            await expect(dispatch).to_be_visible()
            await dispatch.locator("select[name=route]").select_option("city_ops")
            await dispatch.locator("textarea[name=note]").fill("转城运中心处置")
            await dispatch.locator("button").click()

            route, dispatched = await platform.next(15)
            assert (route, dispatched["event"]) == ("city_ops", "alert.dispatched")
            assert dispatched["alert"]["alert_id"] == alert_id
            assert dispatched["alert"]["dispatched_to"] == "city_ops"
            assert platform.refused == 0  # every delivery's signature checked out
            timeline = p.locator("table.timeline")
            await expect(timeline).to_contain_text("值班员已受理")
            await expect(timeline).to_contain_text("转城运中心处置")
            await expect(timeline).to_contain_text(username)
            await p.reload()
            await expect(p.locator("table.deliveries tr.delivery-delivered")).to_have_count(2)
            await page.screenshot("alert.png", full_page=True)
            for document in (received, dispatched):
                assert FULL_NAME not in str(document) and IDN not in str(document)
    finally:
        await platform.close()
    assert [e for e in page.errors if "status of 404" not in e] == []
