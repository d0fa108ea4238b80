"""One real PostgreSQL for the whole session, and a fresh database per test.

The server: the one named by ``SUISHEN_TEST_DSN`` (a ``postgresql://`` URL whose user may
CREATE DATABASE), else an embedded pgserver started once in a private temp directory (unix
socket only), stopped and removed at the end of the session.

Per test: ``db_dsn`` is a new database cloned from a template that already holds the migrated
schema and the partitions around today (CREATE DATABASE .. TEMPLATE copies files, a few tens of
milliseconds), dropped after the test.  ``empty_dsn`` is a new database with no schema at all
(for migration tests).  ``db_pool`` is an asyncpg pool on ``db_dsn`` set up like the hub's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import importlib.util
import itertools
import os
import secrets
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from suishen.central.db import EmbeddedPostgres, init_connection
from suishen.central.migrate import apply_migrations
from suishen.central.partitions import ensure_partitions

from .hubkit import for_cli

TODAY = dt.datetime.now(dt.UTC).date()  # partitions in the template are made around this day


def with_database(dsn: str, database: str) -> str:
    """The same server URL with another database name."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("SUISHEN_TEST_DSN must be a postgresql:// URL")
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on its own loop in a worker thread (session setup runs
    outside any test's event loop, and must not install one in the main thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _create_template(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    con = await asyncpg.connect(with_database(admin_dsn, name))
    try:
        await apply_migrations(con)
        await ensure_partitions(con, today=TODAY)
    finally:
        await con.close()


async def _drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class PgServer:
    """The session's server: an admin DSN and the name of the migrated template database."""

    def __init__(self, admin_dsn: str, template: str, start_s: float) -> None:
        self.admin_dsn = admin_dsn
        self.template = template
        self.start_s = start_s
        self._names = (f"{template}_t{n}" for n in itertools.count())

    def next_name(self) -> str:
        return next(self._names)

    def dsn(self, database: str) -> str:
        return with_database(self.admin_dsn, database)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    started = time.monotonic()
    embedded = None
    admin_dsn = os.environ.get("SUISHEN_TEST_DSN")
    if not admin_dsn:
        if importlib.util.find_spec("pgserver") is None:  # a broken install, not a choice
            pytest.fail("embedded PostgreSQL needs the 'hub' extra (or set SUISHEN_TEST_DSN)")
        # Not under pytest's basetemp: a concurrent pytest session prunes old basetemps (and
        # resets /tmp/pytest-of-<user> to 0700, cutting off the 'pgserver' user when run as
        # root), which would kill the running server.
        state_dir = Path(tempfile.mkdtemp(prefix="suishen-test-pg-"))
        embedded = EmbeddedPostgres(state_dir)
        embedded.start()
        admin_dsn = embedded.uri("postgres")
    template = f"suishen_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _run(_create_template(admin_dsn, template))
        yield PgServer(admin_dsn, template, time.monotonic() - started)
    finally:
        _run(_drop_database(admin_dsn, template))
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(embedded.state_dir, ignore_errors=True)


async def _new_database(pg_server: PgServer, template: str) -> AsyncIterator[str]:
    name = pg_server.next_name()
    admin = await asyncpg.connect(pg_server.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        yield pg_server.dsn(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def db_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A fresh database with the migrated schema and partitions around TODAY."""
    async for dsn in _new_database(pg_server, pg_server.template):
        yield dsn


@pytest.fixture
async def empty_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A fresh database with no schema."""
    async for dsn in _new_database(pg_server, "template0"):
        yield dsn


@pytest.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4, init=init_connection)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def con(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def cli_dsn(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``db_dsn`` for ``--dsn``: without its password, which goes in $SUISHEN_DB_PASSWORD."""
    return for_cli(db_dsn, monkeypatch)
