"""`suishen doctor --gateway CONFIG`: is this gateway installation well, and if not, what to fix.

It reads what an operator would look at, in order, and says one line per finding:

- the config loads, and (when the gateway is not running) the files, pepper and ports that
  `gateway run` needs (gateway/preflight.py);
- the certificates: the client certificate and the CA, their expiry (a warning within
  CERT_WARN_DAYS, an error once expired);
- the hub: reachable, and the clock skew against it (from the Date header of its answer; the
  hub refuses rows outside its clock window, so a skewed gateway loses uploads);
- the running gateway: its /health (ok, degraded with reasons, down), device states and list
  ages, from its own /status; or that it is not running;
- the disk: free space where the journal lives, and the journal's size.

Each Check has a level (ok, warning, error), what it is about and what to do. The command exits
0 when nothing is an error, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import shutil
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509

from suishen.gateway import preflight
from suishen.gateway.config import GatewayConfig
from suishen.protocol.checkup import Check, Level, expiry_check

CLOCK_WARN_S = 30.0
DISK_WARN_FREE = 0.10  # warn under 10 % free on the journal's file system
PROBE_TIMEOUT_S = 3.0


def certificate_checks(config: GatewayConfig, now: dt.datetime) -> list[Check]:
    """Expiry of the hub link's client certificate and CA."""
    if config.hub is None:
        return [Check(level="ok", topic="certificates", message="no hub link configured")]
    found = []
    for topic, path in (("hub.client_cert", config.hub.client_cert), ("hub.ca", config.hub.ca)):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            found.append(Check(level="error", topic=topic, message=f"cannot read {path}: {exc}"))
            continue
        found.append(_cert_expiry(topic, path, cert.not_valid_after_utc, now))
    return found


def _cert_expiry(topic: str, path: Path, not_after: dt.datetime, now: dt.datetime) -> Check:
    return expiry_check(
        topic, str(path), not_after, now, fix="`suishen hub gateway reissue` and install it"
    )


async def hub_checks(config: GatewayConfig, now: dt.datetime) -> list[Check]:
    """Reachable over mutual TLS, and the clock skew against the hub's Date header."""
    if config.hub is None:
        return []
    hub = config.hub
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(hub.ca))
        context.load_cert_chain(str(hub.client_cert), str(hub.client_key))
    except (OSError, ssl.SSLError) as exc:
        return [Check(level="error", topic="hub", message=f"TLS files unusable: {exc}")]
    url = hub.url.rstrip("/") + "/v1/bundles/trust?after=0&wait=0"
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=context) as response,
        ):
            status, date = response.status, response.headers.get("Date")
            await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        cause = getattr(exc, "os_error", None)
        why = (cause.strerror if cause is not None else None) or type(exc).__name__
        return [
            Check(
                level="warning",
                topic="hub",
                message=f"{hub.url} unreachable ({why}): the gateway runs offline meanwhile",
            )
        ]
    found = []
    if status in (401, 403):
        found.append(
            Check(
                level="error",
                topic="hub",
                message=f"the hub refuses this gateway ({status}): register it with "
                "`suishen hub gateway add` or pin its certificate (`hub gateway reissue`)",
            )
        )
    else:
        found.append(Check(level="ok", topic="hub", message=f"{hub.url} answers ({status})"))
    if date is not None:
        skew = (now - email.utils.parsedate_to_datetime(date)).total_seconds()
        level: Level = "warning" if abs(skew) > CLOCK_WARN_S else "ok"
        fix = ": fix the time sync (NTP) of this machine or the hub" if level != "ok" else ""
        found.append(
            Check(level=level, topic="clock", message=f"{skew:+.0f} s against the hub{fix}")
        )
    return found


async def running_checks(config: GatewayConfig) -> tuple[bool, list[Check]]:
    """(running, checks) from the gateway's own /health and /status, if it answers."""
    base = f"http://{config.http.host}:{config.http.port}"
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(base + "/health") as response:
                health: dict[str, Any] = await response.json()
            async with session.get(base + "/status") as response:
                status: dict[str, Any] = await response.json()
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return False, [
            Check(
                level="warning",
                topic="gateway",
                message=f"not running (nothing answers on {base}): `suishen gateway run`",
            )
        ]
    found = [_health_check(health)]
    for lane in status.get("lanes", []):
        for device_id, device in lane.get("devices", {}).items():
            state = device.get("state")
            level: Level = "ok" if state == "connected" else "error"
            since = f" since {device['since_iso']}" if device.get("since_iso") else ""
            found.append(Check(level=level, topic=f"device {device_id}", message=f"{state}{since}"))
    found.extend(_list_check(item) for item in status.get("lists", []))
    return True, found


def _health_check(health: Mapping[str, Any]) -> Check:
    state = health.get("status", "ok" if health.get("ok") else "down")
    reasons = "; ".join(health.get("reasons", [])) or "nothing to report"
    level: Level = {"ok": "ok", "degraded": "warning"}.get(state, "error")  # type: ignore[assignment]
    return Check(level=level, topic="health", message=f"{state}: {reasons}")


def _list_check(item: Mapping[str, Any]) -> Check:
    kind = item.get("kind")
    if not item.get("published"):
        return Check(level="ok", topic=f"list {kind}", message="not published by the hub (none)")
    age = item.get("age_s")
    age_text = f"version {item.get('version')}, {age:.0f} s old" if age is not None else "held"
    if item.get("stale"):
        return Check(
            level="warning",
            topic=f"list {kind}",
            message=f"stale ({age_text}): check the hub link",
        )
    return Check(level="ok", topic=f"list {kind}", message=age_text)


def disk_checks(config: GatewayConfig) -> list[Check]:
    journal = config.journal.path
    folder = journal.parent if journal.parent.exists() else Path()
    usage = shutil.disk_usage(folder)
    free = usage.free / usage.total if usage.total else 1.0
    level: Level = "warning" if free < DISK_WARN_FREE else "ok"
    size = (
        sum(p.stat().st_size for p in journal.parent.glob(journal.name + "*"))
        if (journal.parent.exists())
        else 0
    )
    return [
        Check(
            level=level,
            topic="disk",
            message=f"{free:.0%} free on {folder} ({usage.free // 2**20} MiB); journal "
            f"{size // 2**10} KiB" + ("; free space or move the journal" if level != "ok" else ""),
        )
    ]


async def examine(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in the order the module docstring gives."""
    now = dt.datetime.now(dt.UTC)
    running, running_found = await running_checks(config)
    found = [Check(level="ok", topic="config", message="loads and validates")]
    files = preflight.check_files(config, environ)
    ports = [] if running else preflight.check_ports(config)
    found += [Check(level=f.level, topic=f.setting, message=f.message) for f in files + ports]
    found += certificate_checks(config, now)
    found += await hub_checks(config, now)
    found += running_found
    found += disk_checks(config)
    return found


def run(config: GatewayConfig) -> list[Check]:
    return asyncio.run(examine(config))
