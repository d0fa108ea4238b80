"""`suishen hub run` serves the web UI beside the gateway listener (config [web_listener]) and
stops promptly on SIGTERM even with a live feed open (issue 10 item 2)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import aiohttp
import asyncpg

from suishen.central.keys import init_keys
from suishen.sync import pki

from .conftest import PASSWORD, make_user
from .sitedata import SITE_A

NOW = dt.datetime.now(dt.UTC)


def _wait_ready(path: Path, process: subprocess.Popen[bytes], limit_s: float) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if process.poll() is not None:
            raise AssertionError(f"hub exited early with {process.returncode}")
        time.sleep(0.05)
    raise AssertionError("hub did not become ready")


async def test_hub_serves_web_and_stops_with_a_stream_open(
    db_dsn: str, cli_dsn: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The ready file names the web port; a user logs in there and opens a live feed; SIGTERM
    then stops the hub within a few seconds (exit 0) instead of waiting for the stream."""
    pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_hub(tmp_path / "pki", now=NOW)
    init_keys(tmp_path / "state")
    password = urllib.parse.unquote(urllib.parse.urlsplit(db_dsn).password or "")
    (tmp_path / "db.pw").write_text(password + "\n")
    (tmp_path / "db.pw").chmod(0o600)
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nstate_dir = "state"\n[database]\ndsn = "{cli_dsn}"\nmin_size = 1\n'
        'password_file = "db.pw"\n[gateway_listener]\nport = 0\npki_dir = "pki"\n'
        '[web_listener]\nhost = "127.0.0.1"\nport = 0\n'
    )
    await db_pool.execute("INSERT INTO sites (site_id, kind) VALUES ($1, 'building')", SITE_A)
    await make_user(db_pool, "mgr", "site_manager", [])
    await db_pool.execute(
        "INSERT INTO user_sites (user_id, site_id) SELECT user_id, $1 FROM users", SITE_A
    )
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(  # noqa: ASYNC220 - waited on below, in a thread
        [sys.executable, "-m", "suishen", "hub", "run", "--config", str(config),
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        info = await asyncio.to_thread(_wait_ready, ready, process, 60)
        url = f"http://127.0.0.1:{info['web_port']}"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
            login = {"username": "mgr", "password": PASSWORD, "next": f"/site/{SITE_A}"}
            async with http.post(
                "/login", data=login, headers={"Origin": url}, allow_redirects=False
            ) as response:
                assert response.status == 303
            async with http.get(f"/site/{SITE_A}") as response:
                assert response.status == 200
                assert "Content-Security-Policy" in response.headers
            stream = await http.get(f"/site/{SITE_A}/feed")
            assert stream.status == 200
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 15) == 0
            assert time.monotonic() - started < 3
            stream.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
