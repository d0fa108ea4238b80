"""Demo stage 3: a gateway syncing to the hub on embedded PostgreSQL, and a watchlist coming back.

Real processes and protocols end to end: the hub runs as `suishen hub run` (pgserver under its
state directory, the mutual-TLS gateway listener on loopback); the site's gateway uploads its
journal over HTTPS with its client certificate and long-polls the signed lists. The demo then
puts one visitor on the watchlist with `suishen hub watchlist add`, times how long the signed
watchlist takes to reach the gateway, shows that person being stopped at the door, and compares
the gateway's journal with the central tables per (gateway_id, seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from suishen.central.db import DatabaseSettings, open_dsn
from suishen.central.keys import HubKeyFiles, init_keys
from suishen.demo import site_ops_stage, tracing_tour, web_stage
from suishen.demo.simsite import LaneSpec, SimSite
from suishen.demo.web_stage import WebStage
from suishen.gateway.config import load_config
from suishen.gateway.records import Direction, SiteKind
from suishen.gateway.service import GatewayService
from suishen.protocol.codes import Identity
from suishen.protocol.person import person_key
from suishen.sync import pki

GATEWAY_ID = "gw-building"
SITE_ID = "site-building"
VISITORS = (
    Identity(idt="RIC", idn="11010519491231002X", nat="CHN", nm="张三明", dob="1949-12-31", st="G"),
    Identity(idt="PP", idn="E12345678", nat="GBR", nm="SMITH JOHN", dob="1980-01-01", st="G"),
    Identity(idt="RIC", idn="440301199003073411", nat="CHN", nm="王五", dob="1990-03-07", st="G"),
)


@dataclass(slots=True)
class HubDemoResult:
    journal_rows: int
    central_rows: dict[str, int]
    lost: int
    duplicated: int
    watchlist_reached_s: float
    stopped_at_door: tuple[str, str | None]  # (verdict, reason) of the watchlisted visitor
    alerts_received: int
    trust_version: int
    site_ops: site_ops_stage.SiteOpsResult | None = None
    web: WebStage | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _suishen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "suishen", *args],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip


def _hub_config(root: Path, port: int, web_port: int) -> Path:
    path = root / "hub.toml"
    path.write_text(
        '[hub]\nstate_dir = "hub-state"\nlog_level = "warning"\n\n'
        f'[gateway_listener]\nhost = "127.0.0.1"\nport = {port}\npki_dir = "pki"\n\n'
        f'[web_listener]\nhost = "127.0.0.1"\nport = {web_port}\n',
        encoding="utf-8",
    )
    return path


async def _until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.02) -> None:
    """Poll another component's state (a file, a process, a counter) until it holds."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the state belongs to another component
            await asyncio.sleep(every_s)


def _hub_ready(path: Path, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"the hub exited with {process.returncode}")
    return path.exists()


def _prepare(root: Path) -> tuple[pki.PkiLayout, HubKeyFiles, int]:
    """The deployment CA with the hub's and the gateway's certificates, the hub's keys."""
    root.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(root / "pki", now=now)
    pki.issue_hub(root / "pki", now=now)
    pki.issue_gateway(root / "pki", GATEWAY_ID, now=now)
    return layout, init_keys(root / "hub-state"), _free_port()


async def run_hub_demo(
    root: Path,
    *,
    on_result: Callable[[HubDemoResult], None] | None = None,
    on_web: Callable[[WebStage], Awaitable[None]] | None = None,
) -> HubDemoResult:
    """Stage 3; then (stage 4) site operations at a second building on the same hub
    (``on_result`` is called with both); then (stage 5) the hub's web UI over the demo's data:
    one user per role is made, each logs in and opens the site's dashboard, and ``on_web``
    (stage 6, then e.g. wait for Ctrl-C) is awaited while the hub still serves."""
    layout, keys, port = _prepare(root)
    web_port = _free_port()
    ready = root / "hub.ready"
    config = _hub_config(root, port, web_port)
    hub = subprocess.Popen(  # noqa: ASYNC220, S603 - our own hub, waited on below
        [sys.executable, "-m", "suishen", "hub", "run", "--config", str(config),
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _until(lambda: _hub_ready(ready, hub), 120, 0.05)
        state = str(root / "hub-state")
        await asyncio.to_thread(
            _suishen, "hub", "gateway", "add", GATEWAY_ID, "--site", SITE_ID,
            "--kind", "building", "--pki", str(layout.root), "--state", state,
        )  # fmt: skip
        public_keys = (keys.bundle_public.read_bytes(), keys.seal_public.read_bytes())
        result = await _site_with_hub(root, layout, public_keys, port)
        result.site_ops = await site_ops_stage.run_site_ops(
            root / "tower", pki_root=layout.root, hub_state=root / "hub-state", hub_port=port,
            public_keys=public_keys,
        )  # fmt: skip
        if on_result is not None:
            on_result(result)
        web = await web_stage.prepare(root / "hub-state", f"http://127.0.0.1:{web_port}")
        result.web = web
        if on_web is not None:
            await on_web(web)
        return result
    finally:
        hub.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(hub.wait, 30)
        if hub.poll() is None:
            hub.kill()


async def _site_with_hub(
    root: Path, layout: pki.PkiLayout, public_keys: tuple[bytes, bytes], port: int
) -> HubDemoResult:
    hub_toml = (
        f'[hub]\nurl = "https://127.0.0.1:{port}"\n'
        f'client_cert = "{layout.gateway_cert(GATEWAY_ID)}"\n'
        f'client_key = "{layout.gateway_key(GATEWAY_ID)}"\nca = "{layout.ca_cert}"\n'
        "long_poll_s = 5\n"
    )
    site = await SimSite.create(
        root / "site",
        kind=SiteKind.BUILDING,
        lanes=[LaneSpec(id="in-1"), LaneSpec(id="in-2"), LaneSpec(id="out-1",
               direction=Direction.OUT)],
        passage_delay_s=0.05,
        extra_toml=hub_toml,
        hub_public_keys=public_keys,
    )  # fmt: skip
    # The city's issuer key goes on the hub's trust list, which reaches the gateway signed.
    await asyncio.to_thread(
        _suishen, "hub", "trust", "add", "--entry",
        str(root / "site" / "keys" / "issuer" / "trust_entry.json"),
        "--state", str(root / "hub-state"),
    )  # fmt: skip
    config = load_config(site.config_path)
    service = GatewayService(config, environ=site.environ)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            await service.wait_ready()
        await _until(lambda: service.lists.version("trust") >= 1, 15)
        await asyncio.sleep(0.3)
        clock = int(time.time())
        for lane, who in (("in-1", 0), ("in-2", 1), ("out-1", 0), ("in-1", 2)):
            await site.scan(lane, site.code(VISITORS[who], iat=clock))
            await asyncio.sleep(0.15)
        # The hub puts visitor 1 on the watchlist; the signed list travels down by long-poll.
        watched = VISITORS[1]
        key = person_key(site.pepper, watched.idt, watched.idn, watched.nat)
        before = service.lists.version("watchlist")
        started = time.monotonic()
        await asyncio.to_thread(
            _suishen, "hub", "watchlist", "add", key, "--level", "deny", "--route", "police",
            "--reason", "demo", "--state", str(root / "hub-state"),
        )  # fmt: skip
        await _until(lambda: service.lists.version("watchlist") > before, 15)
        reached_s = time.monotonic() - started
        trust_version = service.lists.version("trust")
        await site.scan("in-2", site.code(watched, iat=int(time.time())))
        await asyncio.sleep(0.3)
        status = service.journal.status  # everything up, including the alert
        await _until(lambda: status().synced_seq >= status().last_seq, 15, 0.05)
    finally:
        service.stop()
        await task
        await site.aclose()
    journal = _journal_keys(root / "site" / "state" / "journal.sqlite3")
    central = await _central_keys(root / "hub-state")
    verdict = _last_scan(root / "site" / "state" / "journal.sqlite3")
    flat = [k for keys in central.values() for k in keys]
    return HubDemoResult(
        journal_rows=len(journal),
        central_rows={table: len(keys) for table, keys in central.items()},
        lost=len(journal - set(flat)),
        duplicated=len(flat) - len(set(flat)),
        watchlist_reached_s=reached_s,
        stopped_at_door=verdict,
        alerts_received=len(central["alerts"]),
        trust_version=trust_version,
    )


def _journal_keys(path: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {seq for (seq,) in db.execute("SELECT seq FROM events")}


def _last_scan(path: Path) -> tuple[str, str | None]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT verdict, reason FROM events WHERE kind = 'scan' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return row[0], row[1]


async def _central_keys(state_dir: Path) -> dict[str, list[int]]:
    import asyncpg  # noqa: PLC0415 - only this stage talks to PostgreSQL directly

    async with open_dsn(DatabaseSettings(state_dir=state_dir)) as dsn:
        con = await asyncpg.connect(dsn)
        try:
            out = {}
            for table in ("scans", "passages", "alerts", "device_events"):
                rows = await con.fetch(
                    f"SELECT seq FROM {table} WHERE gateway_id = $1",  # noqa: S608 - fixed names
                    GATEWAY_ID,
                )
                out[table] = [r["seq"] for r in rows]
            return out
        finally:
            await con.close()


def print_hub_result(result: HubDemoResult) -> None:
    verdict, reason = result.stopped_at_door
    print(f"trust list from the hub installed at the gateway: version {result.trust_version}")
    reached = result.watchlist_reached_s
    print(f"watchlist entry added at the hub reached the gateway in {reached:.2f} s")
    print(f"the watchlisted visitor at the door: {verdict} ({reason}); alert raised and sent up")
    print(
        f"journal rows {result.journal_rows}; central "
        + ", ".join(f"{t} {n}" for t, n in result.central_rows.items())
        + f"; lost {result.lost}, duplicated {result.duplicated}"
    )


def main(root: Path, *, wait: bool = False) -> HubDemoResult:
    """Stages 3 to 6, printed in order; with ``wait`` the web UI stays up until Ctrl-C."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")

    def on_result(result: HubDemoResult) -> None:
        print_hub_result(result)
        print(
            "\nStage 4: site operations at an office tower on the same hub: a tenant invites a "
            "visitor,\nthe garage lane is closed by its time profile, the fire alarm releases "
            "the exits\n",
            flush=True,
        )
        if result.site_ops is not None:
            site_ops_stage.print_site_ops(result.site_ops)

    async def on_web(stage: WebStage) -> None:
        web_stage.print_web(stage)
        # Stage 6 on the running hub's database: its trace and reveal are then in the web UI
        # the demo leaves up.
        await asyncio.to_thread(tracing_tour.main, root)
        if wait:
            await web_stage.wait_for_ctrl_c(stage)

    return asyncio.run(run_hub_demo(root, on_result=on_result, on_web=on_web))
