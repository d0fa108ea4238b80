"""The hub's PostgreSQL (DESIGN §7): a DSN when configured, else an embedded server.

Embedded: `pgserver <https://pypi.org/project/pgserver/>`_ ships PostgreSQL 16 binaries as a
Python package (install the ``hub`` extra).  The hub keeps its data in ``<state_dir>/pgdata``
and its tables in the database ``suishen``.  It is reachable by no other local user (DESIGN §7):

- initdb runs with SCRAM password auth for local and host connections (never trust); the
  superuser password is generated once into ``<state_dir>/db-password`` (0600) and handed to
  initdb as ``--pwfile`` (a 0700 scratch dir), to asyncpg inside this process: never on argv;
- ``pg_ctl start`` with ``-h ""`` (no TCP listener at all) and ``-k <socket dir>``: pgdata
  itself (0700) when the socket path fits the 107-byte limit, else a private directory made by
  ``tempfile.mkdtemp`` (0700, random name); ``unix_socket_permissions = 0700`` as well;
- the hub refuses to start when the password file is not 0600 and ours, pg_hba.conf trusts
  anyone (a cluster made by an older hub), or a server already running on pgdata listens on TCP
  or in a directory others can enter.

pgserver keeps the lifecycle; only its initdb and start are replaced (``_server_class``: its
own use trust auth and, under a long path, a shared runtime dir chmod 0777 when run as root).
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
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from suishen.central.connection import Connection

DATABASE_NAME = "suishen"
PGDATA_DIR = "pgdata"
PASSWORD_FILE = "db-password"  # noqa: S105 - a file name: the superuser password, 0600
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 107  # bytes of a unix socket path Linux takes (sun_path is 108 with NUL)
# Appended to the embedded server's postgresql.conf at initdb: no TCP at all, the socket file
# itself only for the server's own user (the directory is private too), SCRAM for passwords.
SERVER_CONF = """
# suishen: reachable by no other local user (central/db.py)
listen_addresses = ''
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
"""

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
    # The DSN's password (from a file or the environment: resolve_password), never on argv.
    password: str | None = dataclasses.field(default=None, repr=False)
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


DEFAULT_PASSWORD_ENV = "SUISHEN_DB_PASSWORD"  # noqa: S105 - a variable name, not a secret


def dsn_has_password(dsn: str) -> bool:
    """Whether a postgresql:// URI carries a password (in its user info or its query)."""
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qs(parts.query)
    return parts.password is not None or "password" in query


def with_password(dsn: str, password: str | None) -> str:
    """``dsn`` (a postgresql:// URI) with ``password`` set (unchanged when None)."""
    if password is None:
        return dsn
    parts = urllib.parse.urlsplit(dsn)
    user = urllib.parse.quote(urllib.parse.unquote(parts.username or ""), safe="")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def resolve_password(*, file: Path | None = None, env: str | None = None) -> str | None:
    """A database password from ``file`` (ours, not group/other-readable, first line) or the
    environment variable ``env``; None when neither gives one."""
    if file is not None:
        try:
            info = file.stat()
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise DatabaseError(f"cannot read the database password file {file}: {exc}") from exc
        if info.st_mode & 0o077:
            raise DatabaseError(
                f"the database password file {file} is readable by others "
                f"({stat.filemode(info.st_mode)}); chmod 600 it"
            )
        return text.splitlines()[0] if text.strip() else None
    value = os.environ.get(env) if env else None
    return value or None


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


def _read_password(path: Path) -> str:
    """The password in ``path``, which must be ours and not readable by anyone else."""
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise EmbeddedServerError(f"cannot read the database password {path}: {exc}") from exc
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise EmbeddedServerError(
            f"{path} must be owned by this user and mode 0600 (it is "
            f"{stat.filemode(info.st_mode)}); refusing to start"
        )
    if not text:
        raise EmbeddedServerError(f"{path} is empty")
    return text


def ensure_password_file(state_dir: Path) -> str:
    """The embedded server's password: ``<state_dir>/db-password`` (made 0600 if missing)."""
    path = state_dir / PASSWORD_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return _read_password(path)


def _private_dir_problem(path: Path, owner: int) -> str | None:
    """Why ``path`` is not a directory only ``owner`` can enter (None: it is)."""
    try:
        info = path.lstat()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if info.st_uid != owner or info.st_mode & 0o077:
        return f"{path} is {stat.filemode(info.st_mode)} uid {info.st_uid}, not 0700 uid {owner}"
    return None


def _hba_trusts(pgdata: Path) -> bool:
    """Whether pg_hba.conf lets anyone in without a password (a server made before SCRAM)."""
    try:
        lines = (pgdata / "pg_hba.conf").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    rules = (line.split("#", 1)[0].split() for line in lines)
    return any(rule and rule[-1] in ("trust", "ident", "peer") for rule in rules)


def _server_class(pgserver: Any) -> Any:
    """pgserver's PostgresServer with our initdb (SCRAM) and start (private socket, no TCP).

    pgserver keeps the lifecycle (its lock, the handle list, stop on the last handle); only
    the two methods that create and start the cluster are replaced, because pgserver's own
    run initdb with trust authentication and, under a long path, put the socket in a shared
    runtime directory (chmod 0777 when run as root).
    """
    from pgserver import _commands  # noqa: PLC0415 - optional extra
    from pgserver import utils as pg_utils  # noqa: PLC0415

    class PrivatePostgres(pgserver.PostgresServer):  # type: ignore[misc]
        password: str = ""

        def _uid(self) -> int:
            if self.system_user is None:
                return os.geteuid()
            import pwd  # noqa: PLC0415

            return int(pwd.getpwnam(self.system_user).pw_uid)

        def _give(self, path: Path) -> None:
            if self.system_user is not None:
                os.chown(path, self._uid(), -1)

        def ensure_pgdata_inited(self) -> None:
            if self.system_user is not None:  # root: PostgreSQL runs as pgserver's user
                pg_utils.ensure_prefix_permissions(self.pgdata)
                pg_utils.ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
                perms = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
                pg_utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH, perms)
                pg_utils.ensure_folder_permissions(
                    _commands.POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH
                )
                self._give(self.pgdata)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            if _hba_trusts(self.pgdata):
                raise EmbeddedServerError(
                    f"{self.pgdata} lets local users in without a password (made by an older "
                    "hub): dump it and let the hub make a new one; refusing to start"
                )

        def _initdb(self) -> None:
            scratch = Path(tempfile.mkdtemp(prefix="suishen-initdb-"))  # 0700
            try:
                self._give(scratch)
                pwfile = scratch / "pw"
                fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(self.password + "\n")
                self._give(pwfile)
                _commands.initdb(  # type: ignore[attr-defined]
                    [
                        "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256",
                        "--encoding=utf8",
                        "-U",
                        self.postgres_user,
                        f"--pwfile={pwfile}",  # a path: the password is never on argv
                    ],
                    pgdata=self.pgdata,
                    user=self.system_user,
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            with (self.pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(SERVER_CONF)

        def _socket_dir(self) -> Path:
            if len(os.fsencode(self.pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
                return Path(self.pgdata)
            private = Path(tempfile.mkdtemp(prefix="suishen-pg-"))  # 0700, random name
            self._give(private)
            return private

        def ensure_postgres_running(self) -> None:
            info = pg_utils.PostmasterInfo.read_from_pgdata(self.pgdata)
            if info is None or not info.is_running():
                socket_dir = self._socket_dir()
                _commands.pg_ctl(  # type: ignore[attr-defined]
                    ["-w", "-o", '-h ""', "-o", f'-k "{socket_dir}"', "-l", str(self.log), "start"],
                    pgdata=self.pgdata,
                    user=self.system_user,
                    timeout=60,
                )
                for _ in range(600):
                    info = pg_utils.PostmasterInfo.read_from_pgdata(self.pgdata)
                    if info is not None and info.is_running() and info.status == "ready":
                        break
                    time.sleep(0.1)
            if info is None or not info.is_running():
                raise EmbeddedServerError(f"PostgreSQL did not start (log: {self.log})")
            self._postmaster_info = info
            problem = (
                "it listens on TCP"
                if info.hostname
                else "it has no unix socket"
                if info.socket_dir is None
                else _private_dir_problem(info.socket_dir, self._uid())
            )
            if problem is not None:
                raise EmbeddedServerError(
                    f"the running embedded PostgreSQL is reachable by other local users "
                    f"({problem}); stop it (pg_ctl -D {self.pgdata} stop) and start the hub "
                    "again; refusing to start"
                )

    return PrivatePostgres


class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL under ``<state_dir>/pgdata``: unix socket only, in a
    private (0700) directory, SCRAM password auth (password in ``<state_dir>/db-password``).

    Blocking; call from a thread in async code (``open_dsn`` does).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.pgdata = (self.state_dir / PGDATA_DIR).resolve()
        self._server: Any = None
        self._password = ""

    def start(self) -> None:
        pgserver = _import_pgserver()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (self.pgdata / "PG_VERSION").exists() and not (self.state_dir / PASSWORD_FILE).exists():
            raise EmbeddedServerError(
                f"{self.pgdata} exists but its password file {self.state_dir / PASSWORD_FILE} "
                "is gone; refusing to start"
            )
        self._password = ensure_password_file(self.state_dir)
        if self.pgdata.exists():
            _prune_dead_handles(pgserver, self.pgdata)
        try:
            self._server = _get_server(pgserver, self.pgdata, self._password)
        except EmbeddedServerError:
            raise
        except Exception as exc:
            raise EmbeddedServerError(
                f"embedded PostgreSQL under {self.pgdata} did not start (log: "
                f"{self.pgdata / 'log'}): {exc}"
            ) from exc

    @property
    def socket_dir(self) -> Path:
        if self._server is None:
            raise EmbeddedServerError("embedded PostgreSQL is not started")
        directory: Path = self._server.get_postmaster_info().socket_dir
        return directory

    def uri(self, database: str = "postgres") -> str:
        """A libpq URI for ``database`` over the server's unix socket, with the password (in
        this process only: never put it on a command line)."""
        if self._server is None:
            raise EmbeddedServerError("embedded PostgreSQL is not started")
        password = urllib.parse.quote(self._password, safe="")
        host = urllib.parse.quote(str(self.socket_dir), safe="/")
        return f"postgresql://postgres:{password}@/{database}?host={host}"

    def stop(self) -> None:
        """Let go of the server; it stops when no other process holds it."""
        server, self._server = self._server, None
        if server is not None:
            socket_dir = server.get_postmaster_info().socket_dir
            server.cleanup()
            if socket_dir is not None and Path(socket_dir) != self.pgdata:
                with contextlib.suppress(OSError):  # not empty: the server is still up
                    Path(socket_dir).rmdir()


_SERVER_LOCK = threading.Lock()


def _get_server(pgserver: Any, pgdata: Path, password: str) -> Any:
    """pgserver.get_server with our server class (one handle per pgdata per process)."""
    with _SERVER_LOCK:
        known = pgserver.PostgresServer._instances.get(pgdata)
        if known is not None:
            return known
        pgdata.mkdir(mode=0o700, exist_ok=True)
        cls = _server_class(pgserver)
        cls.password = password
        return cls(pgdata, cleanup_mode="stop")


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
        yield with_password(settings.dsn, settings.password)
        return
    assert settings.state_dir is not None  # __post_init__
    embedded = EmbeddedPostgres(settings.state_dir)
    await asyncio.to_thread(embedded.start)
    try:
        await ensure_database(embedded.uri("postgres"), settings.database)
        yield embedded.uri(settings.database)
    finally:
        await asyncio.to_thread(embedded.stop)


async def init_connection(con: Connection) -> None:
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
