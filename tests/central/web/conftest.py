"""Fixtures for the web UI's tests, reused by every area's tests (tests/central/web/).

- ``web_server``: the web app (``web_app``) on the test database (``db_pool``) served on
  loopback, with a cheaper argon2id hasher (same algorithm, smaller cost) so tests log in fast;
- ``web_client(role, sites)``: an async factory; makes a user with that role and those sites
  (the sites are created as buildings when new), logs them in (a real server-side session,
  the same ``create_session`` the login form uses) and returns a ``WebClient``: an aiohttp
  ``TestClient`` with the session cookie, plus ``csrf`` (the session's CSRF token) and
  ``origin`` (to send as the Origin header of unsafe requests: ``client.post(url,
  headers=wc.unsafe_headers(), data=...)``);
- ``anon_client``: a client with no session.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from yarl import URL

from suishen.central import auth
from suishen.central.config import HubConfig
from suishen.central.store import users
from suishen.central.web.app import web_app
from suishen.central.web.pageparams import PEPPER
from suishen.protocol.vocabulary import Role

# argon2id at a tenth of the default cost: the same code path, without 100 ms per login.
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
PASSWORD = "correct horse battery"


@dataclasses.dataclass(slots=True)
class WebClient:
    """A logged-in test client: the aiohttp TestClient, its user and CSRF token."""

    client: TestClient
    username: str
    csrf: str

    @property
    def origin(self) -> str:
        return str(self.client.make_url("/").origin())

    def unsafe_headers(self, **extra: str) -> dict[str, str]:
        """Origin of this server (and extra headers) for POST/PUT/PATCH/DELETE."""
        return {"Origin": self.origin, **extra}


def hub_config(**web_listener: Any) -> HubConfig:
    config = HubConfig()
    return dataclasses.replace(
        config, web_listener=dataclasses.replace(config.web_listener, **web_listener)
    )


@pytest.fixture
def web_config() -> HubConfig:
    """The hub config the web app is built with (override in a test module to change it)."""
    return hub_config()


@pytest.fixture
def web_pepper() -> bytes | None:
    """The deployment pepper the web app holds (the hub's [privacy]); a test module that
    needs one (document number -> person key) overrides this fixture."""
    return None


@pytest.fixture
async def web_server(
    db_pool: asyncpg.Pool, web_config: HubConfig, web_pepper: bytes | None
) -> AsyncIterator[TestServer]:
    app = web_app(pool=db_pool, config=web_config)
    app[auth.PASSWORD_HASHER] = TEST_HASHER
    if web_pepper is not None:
        app[PEPPER] = web_pepper
    server = TestServer(app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def anon_client(web_server: TestServer) -> AsyncIterator[TestClient]:
    client = TestClient(web_server)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def make_user(
    pool: asyncpg.Pool, username: str, role: Role, sites: Iterable[str] = ()
) -> int:
    async with pool.acquire() as con, con.transaction():
        for site in sites:
            await con.execute(
                "INSERT INTO sites (site_id, kind, name) VALUES ($1, 'building', $1) "
                "ON CONFLICT DO NOTHING",
                site,
            )
        user_id = await users.add_user(
            con, username, role=role, password=PASSWORD, display_name=username, hasher=TEST_HASHER
        )
        for site in sites:
            await users.grant_site(con, username, site)
    return user_id


WebClientFactory = Callable[..., Awaitable[WebClient]]


@pytest.fixture
async def web_client(
    web_server: TestServer, db_pool: asyncpg.Pool
) -> AsyncIterator[WebClientFactory]:
    clients: list[TestClient] = []
    numbers = itertools.count(1)

    async def factory(role: Role | str, sites: Iterable[str] = ()) -> WebClient:
        role = Role(role)
        username = f"{role.value}-{next(numbers)}"
        user_id = await make_user(db_pool, username, role, tuple(sites))
        async with db_pool.acquire() as con:
            token, csrf = await users.create_session(con, user_id, lifetime_s=3600)
        client = TestClient(web_server)
        await client.start_server()
        clients.append(client)
        client.session.cookie_jar.update_cookies(
            {auth.SESSION_COOKIE: token}, URL(str(client.make_url("/")))
        )
        return WebClient(client=client, username=username, csrf=csrf)

    try:
        yield factory
    finally:
        for client in clients:
            await client.close()
