"""Real-browser fixtures: Playwright's async API driving Debian's Chromium, in plain
pytest-asyncio fixtures (no pytest-playwright plugin; browsers are never downloaded, so never
`playwright install`: .ci/run installs the `chromium` package with apt-get).

Each page gets an init script that records what the page asks the browser to speak
(``window.__utterances``: text and lang of every SpeechSynthesisUtterance passed to
speechSynthesis.speak), and every console error or page error is collected: a test ends by
asserting there were none (a CSP violation shows up there).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

# The hub's pages need the test PostgreSQL: the same session server and per-test database as
# tests/central (a second definition here; pytest runs one per directory that uses it).
from suishen.central.db import init_connection
from tests.central.conftest import db_dsn, pg_server

__all__ = ["db_dsn", "pg_server"]


@pytest.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool big enough for a whole hub in one process: the live feed and the webhook sender
    each hold a listening connection, the bundle service another, beside ingest and pages."""
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=12, init=init_connection)
    try:
        yield pool
    finally:
        await pool.close()


CHROMIUM = os.environ.get("SUISHEN_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The committed screenshots are refreshed with `make screenshots` (SUISHEN_SCREENSHOTS set to
# docs/screenshots); a plain test run writes them to a temporary directory, so running the tests
# never changes the checkout.
SCREENSHOTS_ENV = "SUISHEN_SCREENSHOTS"
TABLET = {"width": 1280, "height": 800}

RECORD_SPEECH = """
(() => {
  window.__utterances = [];
  const synth = window.speechSynthesis;
  if (!synth) { return; }
  const speak = synth.speak.bind(synth);
  synth.speak = (utterance) => {
    window.__utterances.push({ text: utterance.text, lang: utterance.lang });
    try { speak(utterance); } catch (err) { /* no audio device in a headless browser */ }
  };
})();
"""


@dataclass(slots=True)
class WatchedPage:
    """A page and the errors it reported (console errors, uncaught exceptions)."""

    page: Page
    errors: list[str] = field(default_factory=list)

    async def utterances(self) -> list[dict[str, str]]:
        spoken: list[dict[str, str]] = await self.page.evaluate("window.__utterances")
        return spoken

    async def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Save <name> under $SUISHEN_SCREENSHOTS, or a temporary directory when unset."""
        path = _screenshot_dir() / name
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path


def _screenshot_dir() -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    if chosen:
        return Path(chosen)
    global _TEMP_SHOTS  # one temporary directory per test session
    if _TEMP_SHOTS is None:
        _TEMP_SHOTS = Path(tempfile.mkdtemp(prefix="suishen-screenshots-"))
    return _TEMP_SHOTS


_TEMP_SHOTS: Path | None = None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (CI installs Debian's chromium package)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[WatchedPage]:
    context = await browser.new_context(viewport=TABLET, locale="zh-CN")
    await context.add_init_script(RECORD_SPEECH)
    watched = WatchedPage(await context.new_page())

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    def on_error(error: Error) -> None:
        watched.errors.append(str(error))

    watched.page.on("console", on_console)
    watched.page.on("pageerror", on_error)
    try:
        yield watched
    finally:
        await context.close()
