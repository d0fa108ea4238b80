"""The hub's web UI in Chromium: logging in through the form and switching the language."""

from __future__ import annotations

import asyncpg
from playwright.async_api import expect

from suishen.protocol.vocabulary import Role
from tests.e2e.browser.conftest import WatchedPage
from tests.e2e.browser.hub_site import SITE_ID, hub_web


async def test_log_in_and_switch_language(db_pool: asyncpg.Pool, page: WatchedPage) -> None:
    """The login page is Chinese by default; a site manager logs in through the form (its
    session cookie set by the hub) and is shown by name; the switch turns the page English and
    back; a wrong password is refused in the page's language. No console or CSP errors."""
    async with hub_web(db_pool) as hub:
        username = await hub.user("zhang", Role.SITE_MANAGER, [SITE_ID])
        p = page.page
        await p.goto(hub.url + "/login")
        await expect(p.locator("h1")).to_have_text("登录")
        await page.screenshot("login.png")

        await p.fill("input[name=username]", username)
        await p.fill("input[name=password]", "not the password")
        await p.click("button[type=submit]")
        await expect(p.locator("p.error")).to_have_text("用户名或密码错误。")

        await p.fill("input[name=username]", username)
        await p.fill("input[name=password]", hub.password)
        await p.click("button[type=submit]")
        await expect(p.locator("header .who")).to_contain_text(username)
        await expect(p.locator("header .who")).to_contain_text("物业管理员")
        cookies = {c["name"]: c for c in await p.context.cookies()}
        assert cookies["suishen_session"]["httpOnly"] is True
        assert cookies["suishen_session"]["sameSite"] == "Strict"

        await p.click("header .lang a")
        await expect(p.locator("header .lang a")).to_have_text("中文")
        await expect(p.locator("header .who")).to_contain_text("site_manager")
        await expect(p.locator("html")).to_have_attribute("lang", "en")
        await p.click("header .lang a")
        await expect(p.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(p.locator("header .lang a")).to_have_text("English")
    # Expected: the refused login's page (401) and the favicon the hub does not serve (404).
    unexpected = [e for e in page.errors if not ("status of 401" in e or "status of 404" in e)]
    assert unexpected == []
