"""The lane display in Chromium: a scan from the pty scanner simulator reaches the tablet's page
over SSE, is shown in colour with the masked name and the Chinese reason, is spoken in zh-CN,
and clears after a few seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from playwright.async_api import expect

from suishen.protocol.person import mask_name
from tests.e2e.browser.conftest import WatchedPage
from tests.integration.gateway_fixtures import RunningGateway, cnid, ric, running_gateway

DISPLAY_TOML = "[display]\nenabled = true\nport = 0\nclear_after_s = 2\n"
FULL_NAME = "王小明"  # the name ric() puts in every code
IDN = cnid(dt.date(1985, 5, 5), "282")


async def open_display(gw: RunningGateway, page: WatchedPage, lane_id: str) -> None:
    """Open the lane's page and wait until its event stream is connected."""
    await page.page.goto(f"http://127.0.0.1:{gw.service.display_port}/display/{lane_id}")
    await expect(page.page.locator("#link")).to_have_class("up")
    hub = gw.service.display
    assert hub is not None
    async with asyncio.timeout(5):
        while True:
            if hub.subscribers(lane_id) >= 1:
                return
            await asyncio.sleep(0.01)


async def test_lane_display_shows_and_speaks_each_verdict(
    tmp_path: Path, page: WatchedPage
) -> None:
    """Green code: the page turns green, shows 请通行 and the masked name, and speaks 请通行 in
    zh-CN; a red code turns it red with the reason, spoken too; then it clears to idle. The
    full name and the number never reach the page."""
    body = page.page.locator("body")
    async with running_gateway(tmp_path, extra_toml=DISPLAY_TOML) as gw:
        await open_display(gw, page, "in-1")
        await expect(page.page.locator("#verdict")).to_have_text("请扫码")

        green = await gw.scan("in-1", gw.code(ric(IDN)))
        assert green.verdict == "allow"
        await expect(body).to_have_class("allow")
        await expect(page.page.locator("#verdict")).to_have_text("请通行")
        await expect(page.page.locator("#name")).to_have_text(mask_name(FULL_NAME))
        assert await body.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(17, 122, 55)"
        await page.screenshot("lane-display.png")

        red = await gw.scan("in-1", gw.code(ric(IDN, status="R")))
        assert red.verdict == "deny"
        await expect(body).to_have_class("deny")
        await expect(page.page.locator("#verdict")).to_have_text("禁止通行")
        await expect(page.page.locator("#reason")).to_have_text("红码")
        assert await body.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(179, 21, 27)"
        await page.screenshot("lane-display-deny.png")

        assert await page.utterances() == [
            {"text": "请通行", "lang": "zh-CN"},
            {"text": "禁止通行，红码", "lang": "zh-CN"},
        ]
        await expect(body).to_have_class("idle", timeout=5000)  # cleared after clear_after_s
        text = await page.page.content()
        assert FULL_NAME not in text and IDN not in text
    assert page.errors == []
