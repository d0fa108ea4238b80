"""Demo stage 6: site operations (issue 13) at a second building, against the running hub.

An office tower admits visitors only by invitation (``[site.rules] invitations = "deny"``);
its garage lane carries a time profile that is closed right now; its fire-alarm panel is a
simulated Modbus discrete input. With the hub of stage 3 still up:

1. a tenant of the tower (a hub user with the tenant role) invites a visitor with
   `suishen hub visitor invite` (the document number on standard input, only its person key
   kept); the invitation reaches the gateway in the signed roster bundle;
2. the invited visitor is let in at the lobby, an uninvited one is denied ``not_invited``, and
   the invited visitor is denied ``outside_hours`` at the garage;
3. the fire alarm goes off: the exit is held open (the time it took is measured on the
   turnstile simulator's relay), the gateway's muster list is printed, the input clears and
   the emergency stays, `suishen gateway emergency off` ends it; the emergency alerts reach
   the hub's alert inbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suishen.commands.gateway_emergency import muster_lines
from suishen.demo.config_sims import visitor
from suishen.demo.simsite import LaneSpec, SimSite
from suishen.drivers.sim.alarm_panel import AlarmPanelSimulator
from suishen.gateway.config import load_config
from suishen.gateway.records import Direction, SiteKind
from suishen.gateway.service import GatewayService
from suishen.sync import pki

SITE_ID = "site-tower"
GATEWAY_ID = "gw-tower"
TENANT = "acme"
TIMEZONE = "Asia/Shanghai"  # the site's time zone (the gateway config's default)
ALARM_INPUT = 0
LANES = [
    LaneSpec(id="lobby-in", zone="lobby"),
    LaneSpec(id="garage-in", zone="garage", time_profile="garage"),
    LaneSpec(id="lobby-out", direction=Direction.OUT, zone="lobby"),
]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")


@dataclass(slots=True)
class SiteOpsResult:
    garage_hours: str
    scans: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    exits_held_after_s: float = 0.0
    muster: dict[str, Any] = field(default_factory=dict)
    still_active_after_clear: bool = False
    active_at_end: bool = True
    hub_alerts: int = 0
    tenant_password: str = ""  # the tenant's web login (its invitations at /visitors)


def garage_windows(now: dt.datetime) -> list[str]:
    """Windows of a garage profile that is closed at ``now`` (site local time): office hours
    08:00-20:00 at night, the night shift 22:00-06:00 by day."""
    minute = now.hour * 60 + now.minute
    if 8 * 60 <= minute < 20 * 60:
        return ["00:00-06:00", "22:00-24:00"]
    return ["08:00-20:00"]


def _config_extra(hub_toml: str, windows: list[str], panel_url: str) -> str:
    days = "\n".join(f"{day} = {windows!r}".replace("'", '"') for day in DAYS)
    return (
        f"{hub_toml}\n[time_profiles.garage]\n{days}\n\n"
        f'[emergency]\nalarm = {{ kind = "modbus", url = "{panel_url}", input = {ALARM_INPUT} }}\n'
        "poll_interval_s = 0.05\nalarm_debounce_ms = 100\n"
    )


def _suishen(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "suishen", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"suishen {args[0]} {args[1]}: {done.stderr.strip()[-400:]}")
    return done.stdout


async def _until(condition: Callable[[], bool], timeout_s: float) -> float:
    started = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - another component's state
            await asyncio.sleep(0.005)
    return time.monotonic() - started


async def run_site_ops(
    root: Path, *, pki_root: Path, hub_state: Path, hub_port: int, public_keys: tuple[bytes, bytes]
) -> SiteOpsResult:
    """Stage 6 under ``root`` (see the module docstring); the hub of stage 3 must be up."""
    state = str(hub_state)
    await asyncio.to_thread(pki.issue_gateway, pki_root, GATEWAY_ID, now=dt.datetime.now(dt.UTC))
    layout = pki.PkiLayout(pki_root)
    await asyncio.to_thread(
        _suishen, "hub", "gateway", "add", GATEWAY_ID, "--site", SITE_ID, "--kind", "building",
        "--pki", str(pki_root), "--state", state,
    )  # fmt: skip
    password = secrets.token_urlsafe(9)
    await asyncio.to_thread(
        _suishen, "hub", "user", "add", TENANT, "--role", "tenant", "--site", SITE_ID,
        "--state", state, env={"SUISHEN_USER_PASSWORD": password},
    )  # fmt: skip
    hub_toml = (
        f'[hub]\nurl = "https://127.0.0.1:{hub_port}"\n'
        f'client_cert = "{layout.gateway_cert(GATEWAY_ID)}"\n'
        f'client_key = "{layout.gateway_key(GATEWAY_ID)}"\nca = "{layout.ca_cert}"\n'
        "long_poll_s = 5\n"
    )
    local_now = dt.datetime.now(zoneinfo.ZoneInfo(TIMEZONE))
    windows = garage_windows(local_now)
    result = SiteOpsResult(garage_hours=", ".join(windows), tenant_password=password)
    async with AlarmPanelSimulator() as panel:
        site = await SimSite.create(
            root, kind=SiteKind.BUILDING, lanes=LANES, site_id=SITE_ID, gateway_id=GATEWAY_ID,
            rules_toml='invitations = "deny"\n', passage_delay_s=0.05,
            extra_toml=_config_extra(hub_toml, windows, panel.url), hub_public_keys=public_keys,
        )  # fmt: skip
        # This tower's codes come from the issuer SimSite made: the hub trusts it too (the
        # signed trust list then names both issuers).
        await asyncio.to_thread(
            _suishen, "hub", "trust", "add", "--entry",
            str(root / "keys" / "issuer" / "trust_entry.json"), "--state", state,
        )  # fmt: skip
        service = GatewayService(load_config(site.config_path), environ=site.environ)
        task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(service.wait_ready(), 30)
            await _until(lambda: service.lists.version("trust") >= 2, 15)
            await _visitors(site, service, hub_state, result)
            await _fire_alarm(site, service, panel, result)
        finally:
            service.stop()
            await asyncio.wait_for(task, 10)
            await site.aclose()
    result.hub_alerts = await _hub_emergency_alerts(hub_state)
    return result


async def _visitors(
    site: SimSite, service: GatewayService, hub_state: Path, result: SiteOpsResult
) -> None:
    guest, stranger = visitor(7), visitor(8)
    roster = service.lists.version("roster")
    await asyncio.to_thread(
        _suishen, "hub", "visitor", "invite", SITE_ID, "--document", "RIC", "--from", "now",
        "--until", "+2h", "--lanes", "lobby-in,garage-in", "--name", guest.nm, "--as", TENANT,
        "--state", str(hub_state), stdin=guest.idn + "\n",
        env={"SUISHEN_PEPPER": site.pepper.decode()},
    )  # fmt: skip
    await _until(lambda: service.lists.version("roster") > roster, 15)
    for lane, who, note in (
        ("lobby-in", guest, "invited visitor"),
        ("lobby-in", stranger, "nobody invited them"),
        ("garage-in", guest, "invited, but the garage is closed now"),
    ):
        seq = service.journal.status().last_seq
        await site.scan(lane, site.code(who, iat=int(time.time())))
        await _until(lambda: service.journal.status().last_seq > seq, 5)  # noqa: B023
        await asyncio.sleep(0.15)  # the gate and its passage sensor
        verdict, reason = _last_scan(site.root / "state" / "journal.sqlite3")
        result.scans.append((lane, note, verdict, reason))


async def _fire_alarm(
    site: SimSite, service: GatewayService, panel: AlarmPanelSimulator, result: SiteOpsResult
) -> None:
    emergency = service.emergency
    await _until(lambda: (emergency.alarm_status() or {}).get("state") == "connected", 10)
    exits = [lane for lane in site.lanes.values() if lane.spec.direction is Direction.OUT]
    panel.set_input(ALARM_INPUT, True)
    result.exits_held_after_s = await _until(
        lambda: all(lane.turnstile is not None and lane.turnstile.relay_on for lane in exits), 5
    )
    result.muster = emergency.muster()
    panel.set_input(ALARM_INPUT, False)
    await asyncio.sleep(0.4)  # longer than the debounce: the input has cleared
    result.still_active_after_clear = emergency.active
    url = f"http://127.0.0.1:{service.http_port}"
    await asyncio.to_thread(
        _suishen, "gateway", "emergency", "off", "--note", "drill over", "--actor", "demo",
        "--url", url,
    )  # fmt: skip
    result.active_at_end = emergency.active
    status = service.journal.status
    await _until(lambda: status().synced_seq >= status().last_seq, 15)


def _last_scan(journal: Path) -> tuple[str, str | None]:
    with sqlite3.connect(journal) as db:
        row = db.execute(
            "SELECT verdict, reason FROM events WHERE kind = 'scan' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return str(row[0]), row[1]


async def _hub_emergency_alerts(hub_state: Path) -> int:
    import asyncpg  # noqa: PLC0415 - only this check talks to PostgreSQL directly

    from suishen.central.db import DatabaseSettings, open_dsn  # noqa: PLC0415

    async with open_dsn(DatabaseSettings(state_dir=hub_state)) as dsn:
        con = await asyncpg.connect(dsn)
        try:
            count = await con.fetchval(
                "SELECT count(*) FROM alerts WHERE kind = 'emergency' AND site_id = $1", SITE_ID
            )
        finally:
            await con.close()
    return int(count)


def print_site_ops(result: SiteOpsResult) -> None:
    print(f"garage lane's time profile today: open {result.garage_hours} (closed now)")
    width = max(len(note) for _lane, note, _v, _r in result.scans)
    print(f"{'lane':<10}  {'what happened':<{width}}  verdict  reason")
    print(f"{'-' * 10}  {'-' * width}  -------  -------------")
    for lane, note, verdict, reason in result.scans:
        print(f"{lane:<10}  {note:<{width}}  {verdict:<7}  {reason or '-'}")
    print(
        f"\nfire alarm input set: the exit held open after "
        f"{result.exits_held_after_s * 1000:.0f} ms; the gateway's muster list:"
    )
    for line in muster_lines(result.muster):
        print(f"  {line}")
    print(
        f"alarm input cleared: emergency still on ({result.still_active_after_clear}); "
        f"`suishen gateway emergency off`: on now {result.active_at_end}; "
        f"emergency alerts in the hub's inbox: {result.hub_alerts}"
    )
    print(
        f"the tenant's web login (stage 5, its invitations and arrivals at /visitors): "
        f"user {TENANT} password {result.tenant_password}"
    )
