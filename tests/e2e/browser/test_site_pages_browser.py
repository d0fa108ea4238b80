"""A site manager runs the site from Chromium: a scan at a simulated gateway (pty scanner,
Modbus turnstile) uploads to the hub over mutual TLS and appears in the dashboard's live feed;
the scan log lists it, the CSV export downloads it (masked, UTF-8 with BOM); the page switches
to English. Screenshots of each page go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
from playwright.async_api import expect

from suishen.protocol.person import mask_name
from suishen.protocol.vocabulary import Role
from tests.e2e.browser.conftest import WatchedPage
from tests.e2e.browser.hub_site import SITE_ID, hub_web, site_uploading
from tests.integration.gateway_fixtures import cnid, ric

FULL_NAME = "王小明"  # the name ric() puts in every code
IDN = cnid(dt.date(1985, 5, 5), "293")


async def test_live_feed_scan_log_and_csv_export(
    db_pool: asyncpg.Pool, page: WatchedPage, tmp_path: Path
) -> None:
    """Log in, see a gateway's scan arrive in the live feed (masked), find it in the scan log,
    export the CSV, switch to English. The full name and number never reach the browser."""
    p = page.page
    async with hub_web(db_pool) as hub, site_uploading(db_pool, tmp_path) as site:
        username = await hub.user("li", Role.SITE_MANAGER, [SITE_ID])
        await p.goto(hub.url + "/login")
        await p.fill("input[name=username]", username)
        await p.fill("input[name=password]", hub.password)
        await p.click("button[type=submit]")
        # One site granted: the picker goes straight to its dashboard.
        await expect(p).to_have_url(f"{hub.url}/site/{SITE_ID}")
        feed = p.locator("#live-feed")
        await expect(feed).to_have_class("feed live")  # the event stream is open

        await site.scan("in-1", ric(IDN))
        first = feed.locator("li").first
        await expect(first).to_contain_text(mask_name(FULL_NAME), timeout=15_000)
        await expect(first).to_have_class("allow")
        await expect(first).to_contain_text("in-1")
        await site.scan("in-1", ric(IDN, status="R"))
        await expect(feed.locator("li.deny").first).to_contain_text(
            mask_name(FULL_NAME), timeout=15_000
        )
        await page.screenshot("dashboard.png", full_page=True)

        await p.goto(f"{hub.url}/site/{SITE_ID}/scans")
        rows = p.locator("table.scans tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_contain_text(mask_name(FULL_NAME))
        await page.screenshot("scan-log.png", full_page=True)

        async with p.expect_download() as info:
            await p.click(f"a[href^='/site/{SITE_ID}/scans.csv']")
        download = await info.value
        saved = tmp_path / "scans.csv"
        await download.save_as(saved)
        data = await asyncio.to_thread(saved.read_bytes)
        assert data.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read the Chinese right
        text = data.decode("utf-8-sig")
        assert text.count("\n") == 3  # the header and both scans
        assert mask_name(FULL_NAME) in text

        await p.click("header .lang a")
        await expect(p.locator("html")).to_have_attribute("lang", "en")
        await expect(p.locator("h1")).to_contain_text("Scan log")
        await p.goto(f"{hub.url}/site/{SITE_ID}")
        await expect(p.locator("h2").filter(has_text="Live feed")).to_be_visible()
        await page.screenshot("dashboard-en.png", full_page=True)

        for content in (await p.content(), text):
            assert FULL_NAME not in content and IDN not in content
    assert [e for e in page.errors if "status of 404" not in e] == []
