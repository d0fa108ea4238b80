"""The hub's PostgreSQL (DESIGN §7): a DSN when configured, else an embedded server.

Embedded: `pgserver <https://pypi.org/project/pgserver/>`_ ships PostgreSQL 16 binaries as a
Python package (install the ``hub`` extra).  ``pgserver.get_server(pgdata)`` runs initdb once,
then ``pg_ctl start`` with ``-h ""`` (no TCP listener at all) and ``-k <socket dir>`` (a unix
socket, normally inside pgdata), and returns a handle whose ``get_uri()`` names that socket.
The hub keeps its data in ``<state_dir>/pgdata`` and its tables in the database ``suishen``.
Facts about pgserver 0.1.x this module relies on (read from its source):

- it is blocking (subprocess, sleeps), so it runs in a worker thread here;
- a server already running on the same pgdata is reused (a hub restarted after kill -9 finds
  its PostgreSQL still up);
- handles are reference-counted across processes by pid in ``pgdata/.handle_pids.json``; the
  last process to let go stops the server.  A pid left there by a process that was killed would
  keep the server up forever, so dead pids are pruned before attaching;
- handles are per pgdata per process: open one ``open_database`` per state dir in a process
  and share its pool (a second one would share the first's handle and lose the server when
  the first closes);
- run as root, it creates a system user ``pgserver``, runs PostgreSQL as that user (PostgreSQL
  refuses to run as root) and adds o+rx to the parent directories of pgdata;
- importing it reads platformdirs' runtime dir, which warns when ``XDG_RUNTIME_DIR`` is unset
  (services, containers) and falls back to a private ``/tmp/runtime-<uid>`` (checked for owner
  and mode 0700).  That fallback is what we want, so that one warning class is silenced at import.

Pool: ``asyncpg.create_pool`` with an ``init`` that creates this connection's staging tables
(see STAGING_DDL) once the schema exists.  The ingest path is::

    async with pool.acquire() as con, con.transaction():
        await con.copy_records_to_table("staging_scans", records=rows, columns=[...])
        await con.execute(INSERT INTO scans SELECT ... FROM staging_scans ON CONFLICT DO NOTHING)
    # commit empties staging_scans (ON COMMIT DELETE ROWS)

Staging tables are TEMP: private to the connection (no batch ids, no cross-talk between
concurrent ingests), never WAL-logged, and emptied by the commit that used them.

Exceptions::

    DatabaseError                the hub cannot reach or start its database
     +-- EmbeddedServerError     pgserver is missing or failed to start
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

DATABASE_NAME = "suishen"
PGDATA_DIR = "pgdata"

# One TEMP staging table per fact table that gateways send in bulk.  LIKE copies the columns
# and their defaults (received_at) but no constraints or keys: staging accepts anything that
# has the right types, and the INSERT .. ON CONFLICT DO NOTHING into the real table decides.
STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS staging_scans
    (LIKE scans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_passages
    (LIKE passages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""


class DatabaseError(Exception):
    """The hub cannot reach or start its database."""


class EmbeddedServerError(DatabaseError):
    """pgserver is not installed or the embedded PostgreSQL failed to start."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    """Where the hub's tables live and how many connections it keeps."""

    dsn: str | None = None  # production: a PostgreSQL >= 14 DSN; None: embedded pgserver
    state_dir: Path | None = None  # embedded: pgdata goes to <state_dir>/pgdata
    database: str = DATABASE_NAME  # embedded: the database created and used in that server
    min_size: int = 1
    max_size: int = 10
    command_timeout: float | None = 60.0

    def __post_init__(self) -> None:
        if self.dsn is None and self.state_dir is None:
            raise ValueError("DatabaseSettings needs a dsn or a state_dir")
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")


# --------------------------------------------------------------------------- embedded server


def _import_pgserver() -> Any:
    try:
        from platformdirs.api import RuntimeDirWarning  # noqa: PLC0415 - optional extra
    except ImportError as exc:  # pragma: no cover - platformdirs comes with pgserver
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'hub' extra: pip install 'suishen-gate[hub]'"
        ) from exc
    with warnings.catch_warnings():
        # XDG_RUNTIME_DIR unset: platformdirs falls back to a checked private /tmp dir (above).
        warnings.simplefilter("ignore", RuntimeDirWarning)
        try:
            import pgserver  # noqa: PLC0415 - optional extra, imported only when embedded
        except ImportError as exc:
            raise EmbeddedServerError(
                "the embedded PostgreSQL needs the 'hub' extra: pip install 'suishen-gate[hub]'"
            ) from exc
    return pgserver


def _prune_dead_handles(pgserver: Any, pgdata: Path) -> None:
    """Forget pids in pgserver's handle list whose process is gone (killed hubs)."""
    import psutil  # noqa: PLC0415 - comes with pgserver

    handles = pgdata / ".handle_pids.json"
    with pgserver.PostgresServer._lock:  # the lock pgserver guards that file with
        try:
            pids = json.loads(handles.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive), encoding="utf-8")


class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL under ``<state_dir>/pgdata`` (unix socket only).

    Blocking; call from a thread in async code (``open_dsn`` does).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.pgdata = (self.state_dir / PGDATA_DIR).resolve()
        self._server: Any = None

    def start(self) -> None:
        pgserver = _import_pgserver()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.pgdata.exists():
            _prune_dead_handles(pgserver, self.pgdata)
        try:
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedServerError(
                f"embedded PostgreSQL under {self.pgdata} did not start (log: "
                f"{self.pgdata / 'log'}): {exc}"
            ) from exc

    def uri(self, database: str = "postgres") -> str:
        """A libpq URI for ``database`` over the server's unix socket."""
        if self._server is None:
            raise EmbeddedServerError("embedded PostgreSQL is not started")
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Let go of the server; it stops when no other process holds it."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()


async def ensure_database(admin_dsn: str, database: str) -> None:
    """CREATE DATABASE ``database`` unless it exists (connects to ``admin_dsn``)."""
    con = await asyncpg.connect(admin_dsn)
    try:
        exists = await con.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            ident = await con.fetchval("SELECT quote_ident($1)", database)
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a racing hub made it
                await con.execute(f"CREATE DATABASE {ident}")
    finally:
        await con.close()


@contextlib.asynccontextmanager
async def open_dsn(settings: DatabaseSettings) -> AsyncIterator[str]:
    """Yield the DSN to use: the configured one, or the embedded server's (started here and
    let go on exit)."""
    if settings.dsn is not None:
        yield settings.dsn
        return
    assert settings.state_dir is not None  # __post_init__
    embedded = EmbeddedPostgres(settings.state_dir)
    await asyncio.to_thread(embedded.start)
    try:
        await ensure_database(embedded.uri("postgres"), settings.database)
        yield embedded.uri(settings.database)
    finally:
        await asyncio.to_thread(embedded.stop)


async def init_connection(con: asyncpg.Connection) -> None:
    """Per-connection setup for the pool: the TEMP staging tables, once the schema exists."""
    if await con.fetchval("SELECT to_regclass('scans') IS NOT NULL"):
        await con.execute(STAGING_DDL)


@contextlib.asynccontextmanager
async def open_database(
    settings: DatabaseSettings, *, migrate: bool = True
) -> AsyncIterator[asyncpg.Pool]:
    """``async with open_database(settings) as pool``: DSN or embedded server, migrations
    applied (unless ``migrate=False``), then an asyncpg pool; all closed on exit."""
    async with open_dsn(settings) as dsn:
        if migrate:
            from suishen.central.migrate import apply_migrations  # noqa: PLC0415 - no cycle

            con = await asyncpg.connect(dsn)
            try:
                await apply_migrations(con)
            finally:
                await con.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.min_size,
            max_size=settings.max_size,
            command_timeout=settings.command_timeout,
            init=init_connection,
        )
        try:
            yield pool
        finally:
            await pool.close()


# --------------------------------------------------------------------------- aiohttp wiring

DB_POOL: web.AppKey[asyncpg.Pool] = web.AppKey("db_pool", asyncpg.Pool)


def database_ctx(
    settings: DatabaseSettings, *, migrate: bool = True
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry that puts the pool at ``app[DB_POOL]``."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_database(settings, migrate=migrate) as pool:
            app[DB_POOL] = pool
            yield

    return ctx
