"""Demo stage 5: the hub's web UI over the demo's data (issue 10 item 5).

The hub of stage 3 also serves its web listener on loopback.  This stage makes one user per
role with `suishen hub user add` (a random password through $SUISHEN_USER_PASSWORD, never
argv): a site manager of the demo's building, an analyst and an admin; logs each in over HTTP
and opens the building's dashboard (so a broken page fails the demo, and its test); then
prints the address and the logins.  Interactive runs keep the hub up until Ctrl-C
(``wait_for_ctrl_c``); ``suishen demo --no-wait`` or ``SUISHEN_DEMO_NO_WAIT=1`` (and any run
whose stdin is not a terminal) end at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

SITE_ID = "site-building"  # hub_stage.SITE_ID (hub_stage imports this module)
USERS = (("site_manager", "manager"), ("analyst", "analyst"), ("admin", "admin"))
NO_WAIT_ENV = "SUISHEN_DEMO_NO_WAIT"


@dataclasses.dataclass(slots=True)
class WebStage:
    url: str
    logins: dict[str, tuple[str, str]]  # role -> (username, password)
    pages: dict[str, int]  # role -> HTTP status of the building's dashboard after logging in


def _add_user(state_dir: Path, username: str, role: str, password: str) -> None:
    sites = ["--site", SITE_ID] if role == "site_manager" else []
    subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "suishen", "hub", "user", "add", username, "--role", role,
         *sites, "--state", str(state_dir)],
        env={**os.environ, "SUISHEN_USER_PASSWORD": password},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip


async def _open_dashboard(url: str, username: str, password: str) -> int:
    jar = aiohttp.CookieJar(unsafe=True)  # the cookie of a loopback address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        form = {"username": username, "password": password, "next": f"/site/{SITE_ID}"}
        async with http.post(
            f"{url}/login", data=form, headers={"Origin": url}, allow_redirects=False
        ) as response:
            if response.status != 303:
                return response.status
        async with http.get(f"{url}/site/{SITE_ID}") as response:
            await response.read()
            return response.status


async def prepare(state_dir: Path, url: str) -> WebStage:
    logins: dict[str, tuple[str, str]] = {}
    pages: dict[str, int] = {}
    for role, username in USERS:
        password = secrets.token_urlsafe(9)
        await asyncio.to_thread(_add_user, state_dir, username, role, password)
        logins[role] = (username, password)
        pages[role] = await _open_dashboard(url, username, password)
    return WebStage(url=url, logins=logins, pages=pages)


def print_web(stage: WebStage) -> None:
    print(f"\nStage 5: the hub's web UI on {stage.url}/ (Chinese; English by the switch)")
    for role, (username, password) in stage.logins.items():
        status = stage.pages[role]
        note = "" if status == 200 else f"  (dashboard answered {status})"
        print(f"  {role:<13} user {username:<9} password {password}{note}")


def should_wait(no_wait: bool) -> bool:
    return not no_wait and not os.environ.get(NO_WAIT_ENV) and sys.stdin.isatty()


async def wait_for_ctrl_c(stage: WebStage) -> None:
    """Keep the hub serving until Ctrl-C (or SIGTERM); the logins are printed already."""
    print(
        f"\nThe web UI stays up on {stage.url}/. Press Ctrl-C to stop the hub and end the demo.",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
