"""The hub for browser tests: its web UI served on loopback over the test database, and a
simulated site whose real gateway uploads to the hub's gateway listener over mutual TLS.

``async with hub_web(pool) as hub`` serves ``web_app`` (with a cheaper argon2id hasher so logins
are fast) at ``hub.url``; ``hub.user(username, role, sites)`` makes a user with the test password.

``async with site_uploading(pool, root) as site`` (bench/web.py's, shared with the benchmark)
starts the hub's gateway listener (``gateway_app`` on the same pool, TLS with a fresh
deployment CA), registers the site and its gateway, and runs a SimSite gateway (pty scanners,
Modbus turnstile simulators) whose [hub] section points at it: ``await site.scan(lane,
identity)`` scans a freshly issued code, and the row reaches the hub's tables like any
gateway's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from bench.web import UPLOAD_SITE_ID, site_uploading

from suishen.central import auth
from suishen.central.app import serve_web
from suishen.central.config import HubConfig
from suishen.protocol.vocabulary import Role
from tests.central.web.conftest import PASSWORD, TEST_HASHER, make_user

SITE_ID = UPLOAD_SITE_ID

__all__ = ["SITE_ID", "HubWeb", "hub_web", "site_uploading"]


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
