"""The hub for browser tests: its web UI served on loopback over the test database, and a
simulated site whose real gateway uploads to the hub's gateway listener over mutual TLS.

``async with hub_web(pool) as hub`` serves ``web_app`` (with a cheaper argon2id hasher so logins
are fast) at ``hub.url``; ``hub.user(username, role, sites)`` makes a user with the test password.

``async with site_uploading(pool, root) as site`` starts the hub's gateway listener
(``gateway_app`` on the same pool, TLS with a fresh deployment CA), registers the site and its
gateway, and runs a SimSite gateway (pty scanners, Modbus turnstile simulators) whose [hub]
section points at it: ``await site.scan(lane, identity)`` scans a freshly issued code, and the
row reaches the hub's tables like any gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiohttp import web

from suishen.central import auth
from suishen.central.app import gateway_app, serve, serve_web
from suishen.central.config import HubConfig
from suishen.demo.simsite import LaneSpec, SimSite
from suishen.gateway.config import load_config
from suishen.gateway.records import Direction, SiteKind
from suishen.gateway.service import GatewayService
from suishen.protocol.codes import Identity
from suishen.protocol.vocabulary import Role
from suishen.sync import pki
from tests.central.web.conftest import PASSWORD, TEST_HASHER, make_user

SITE_ID = "site-building"  # what SimSite names a building site and its gateway
GATEWAY_ID = "gw-building"
WAIT_S = 15.0


@dataclass(slots=True)
class HubWeb:
    url: str
    pool: asyncpg.Pool
    app: web.Application

    async def user(self, username: str, role: Role, sites: Iterable[str] = ()) -> str:
        """A user with the test password; returns the username."""
        await make_user(self.pool, username, role, tuple(sites))
        return username

    @property
    def password(self) -> str:
        return PASSWORD


@contextlib.asynccontextmanager
async def hub_web(pool: asyncpg.Pool, config: HubConfig | None = None) -> AsyncIterator[HubWeb]:
    from suishen.central.web.app import web_app  # noqa: PLC0415 - the web extra

    app = web_app(pool=pool, config=config or HubConfig())
    app[auth.PASSWORD_HASHER] = TEST_HASHER
    runner, port = await serve_web(app, "127.0.0.1", 0)
    try:
        yield HubWeb(url=f"http://127.0.0.1:{port}", pool=pool, app=app)
    finally:
        await runner.cleanup()


@dataclass(slots=True)
class UploadingSite:
    site: SimSite
    service: GatewayService
    pool: asyncpg.Pool

    async def scan(self, lane_id: str, identity: Identity) -> None:
        await self.site.scan(lane_id, self.site.code(identity, iat=int(time.time()), ttl_s=120))

    async def central_scans(self) -> int:
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM scans WHERE site_id = $1", SITE_ID
        )
        return count


async def _register(pool: asyncpg.Pool, layout: pki.PkiLayout) -> None:
    fingerprint = pki.fingerprint(pki.load_certificate(layout.gateway_cert(GATEWAY_ID)))
    async with pool.acquire() as con, con.transaction():
        await con.execute(
            "INSERT INTO sites (site_id, kind, name) VALUES ($1, 'building', '测试大厦') "
            "ON CONFLICT (site_id) DO NOTHING",
            SITE_ID,
        )
        await con.execute(
            "INSERT INTO gateways (gateway_id, site_id, cert_sha256) VALUES ($1, $2, $3)",
            GATEWAY_ID,
            SITE_ID,
            fingerprint,
        )


@contextlib.asynccontextmanager
async def site_uploading(
    pool: asyncpg.Pool, root: Path, *, lanes: list[LaneSpec] | None = None
) -> AsyncIterator[UploadingSite]:
    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(root / "pki", now=now)
    pki.issue_hub(root / "pki", now=now)
    pki.issue_gateway(root / "pki", GATEWAY_ID, now=now)
    await _register(pool, layout)
    site_root = root / "site"
    site_root.mkdir(parents=True, exist_ok=True)
    # The site's keys first (its bundle key signs what the hub serves to it).
    site = await SimSite.create(
        site_root,
        kind=SiteKind.BUILDING,
        lanes=lanes or [LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)],
        passage_delay_s=0.02,
    )
    try:
        app = gateway_app(bundle_key=site.bundle_key, pool=pool, bundle_poll_s=0.5)
        runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
        try:
            hub_toml = (
                f'[hub]\nurl = "https://localhost:{port}"\n'
                f'client_cert = "{layout.gateway_cert(GATEWAY_ID)}"\n'
                f'client_key = "{layout.gateway_key(GATEWAY_ID)}"\nca = "{layout.ca_cert}"\n'
                "batch_interval_s = 0.05\nlong_poll_s = 2\n"
            )
            site.write_config(rules_toml="", http_port=0, extra=hub_toml)
            service = GatewayService(load_config(site.config_path), environ=site.environ)
            task = asyncio.create_task(service.run())
            try:
                async with asyncio.timeout(WAIT_S):
                    await service.wait_ready()
                yield UploadingSite(site=site, service=service, pool=pool)
            finally:
                service.stop()
                async with asyncio.timeout(WAIT_S):
                    await task
        finally:
            await runner.cleanup()
    finally:
        await site.aclose()
