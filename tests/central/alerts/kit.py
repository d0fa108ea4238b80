"""Shared pieces of the alert tests: sites (key or not), alerts raised through the real ingest
fast lane, webhook endpoints with secret files."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

import asyncpg

from suishen.central.alerts.endpoints import set_endpoint
from suishen.central.ingest import store_alerts
from suishen.sync.wire import parse_batch
from tests.central.hubkit import OTHER_SITE, SITE, alert_row, body, register

_SEQ = itertools.count(1)


async def sites(pool: asyncpg.Pool, *, key_site: bool = False) -> None:
    """site-a (gateway gw-a; a key site if ``key_site``) and site-b (gw-b, not a key site)."""
    await register(pool, "gw-a", SITE)
    await register(pool, "gw-b", OTHER_SITE)
    await pool.execute("UPDATE sites SET key_site = $1 WHERE site_id = $2", key_site, SITE)


async def raise_alert(pool: asyncpg.Pool, *, site_id: str = SITE, route: str = "police") -> int:
    """An alert sent by the site's gateway on the fast lane; its alert_id."""
    gateway = "gw-a" if site_id == SITE else "gw-b"
    seq = next(_SEQ) * 2
    row = alert_row(seq, seq - 1, route=route, site_id=site_id)
    batch = parse_batch(body(gateway, [row]), bound_gateway_id=gateway)
    assert await store_alerts(pool, batch) == 1
    alert_id = await pool.fetchval(
        "SELECT alert_id FROM alerts WHERE gateway_id = $1 AND seq = $2", gateway, seq
    )
    assert alert_id is not None
    return int(alert_id)


def secret_file(directory: Path, name: str) -> tuple[Path, bytes]:
    """A fresh secret in a 0600 file."""
    secret = secrets.token_hex(24).encode()
    path = directory / f"{name}.secret"
    path.write_bytes(secret + b"\n")
    path.chmod(0o600)
    return path, secret


async def endpoint(pool: asyncpg.Pool, route: str, url: str, directory: Path) -> bytes:
    """Configure ``route``'s webhook to ``url``; its secret."""
    path, secret = secret_file(directory, route)
    async with pool.acquire() as con:
        await set_endpoint(con, route, url, str(path))
    return secret
