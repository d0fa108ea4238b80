"""A PostgreSQL server for the fault tests that a test can restart in place.

PostgreSQL from pgserver's bundled binaries (``initdb``, ``pg_ctl``), run directly rather than
through pgserver's handle bookkeeping (which follows the first postmaster's pid, so a server
restarted under it would be neither found nor stopped), so that a test can restart it in place
(``pg_ctl restart -m immediate``: every backend killed without a checkpoint, crash recovery at
start) and keep its address.  It listens on 127.0.0.1 at a fixed port and on a unix socket; as
root it runs as the ``pgserver`` system user (PostgreSQL refuses root), as pgserver itself does.
One per test session (tests/faults/conftest.py); every test gets its own database, migrated and
partitioned.  fsync stays on: durability is what the tests are about.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from suishen.central.migrate import apply_migrations
from suishen.central.partitions import ensure_partitions

POLL_S = 0.05
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    """pgserver's bundled PostgreSQL binaries (pginstall/bin), found without importing
    pgserver (its import has side effects: a lock file, a platformdirs warning)."""
    import importlib.util  # noqa: PLC0415 - only here

    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("the fault tests need pgserver (the 'hub' extra)")
    return Path(spec.origin).parent / "pginstall" / "bin"


class PostgresServer:
    """A PostgreSQL server on 127.0.0.1:port (and a unix socket) that a test can restart.

    Blocking methods (subprocess); async callers use ``asyncio.to_thread``.
    """

    SYSTEM_USER = "pgserver"  # the account pgserver creates to run PostgreSQL as root

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.socket_dir = root / "sock"
        self.log_path = self.pgdata / "server.log"
        self.port = free_port()
        self.bin = _pg_bin()
        self.user: str | None = self.SYSTEM_USER if os.geteuid() == 0 else None
        self.restarts = 0

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> str:
        try:
            result = subprocess.run(
                [str(self.bin / tool), *args],
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=self.user,
                cwd=self.root,
            )
        except subprocess.CalledProcessError as exc:
            log = self.log_path.read_text(errors="replace")[-4000:] if self.log_exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({exc.returncode}):\n{exc.stdout}\n"
                f"{exc.stderr}\n--- server log ---\n{log}"
            ) from exc
        return result.stdout

    def log_text(self) -> str:
        """The server's log so far (root reads it although pgdata belongs to the server)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_exists(self) -> bool:
        # pgdata is 0700 and owned by the server's user; root can read it anyway.
        return self.log_path.exists()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the server's user must reach pgdata and the socket dir
        self.socket_dir.mkdir(mode=0o777, exist_ok=True)
        self.socket_dir.chmod(0o777)
        self.pgdata.mkdir(mode=0o700)
        if self.user is not None:
            import pwd  # noqa: PLC0415 - POSIX only, used only as root

            _ensure_reachable(self.root)
            _ensure_reachable(self.bin.parent)
            entry = pwd.getpwnam(self.user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D", str(self.pgdata),
            "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres",
        )  # fmt: skip

    def _options(self) -> str:
        # fsync stays on: durability is what the tests are about.
        return f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c max_connections=200"

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_path), "-w", "-t", "60",
            "-o", self._options(), "start",
        )  # fmt: skip

    def restart(self, mode: str = "immediate") -> None:
        """Stop (``immediate``: no shutdown checkpoint, every backend killed, crash recovery
        at start; ``fast``: clean) and start again on the same port."""
        assert mode in ("immediate", "fast", "smart")
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_path), "-w", "-t", "60",
            "-m", mode, "-o", self._options(), "restart",
        )  # fmt: skip
        self.restarts += 1

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", mode, "stop")

    def is_running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "status")
        except RuntimeError:
            return False
        return True

    def close(self) -> None:
        """Stop the server (if running) and remove its files."""
        with contextlib.suppress(RuntimeError, FileNotFoundError):
            if self.is_running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def launch(cls) -> PostgresServer:
        """initdb and start in a new private directory (not under pytest's basetemp, which a
        concurrent session may prune under a running server)."""
        server = cls(Path(tempfile.mkdtemp(prefix="suishen-faults-pg-")))
        try:
            server.init()
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    async def create_database(self, name: str | None = None) -> str:
        """A new database with every migration applied and partitions around today; its
        DSN.  (The hub would do the same at start; doing it here lets compare() run even
        when no hub ever came up.)"""
        name = name or f"faults_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        dsn = self.dsn(name)
        con = await asyncpg.connect(dsn)
        try:
            await apply_migrations(con)
            await ensure_partitions(con, today=dt.datetime.now(dt.UTC).date())
        finally:
            await con.close()
        return dsn

    async def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1]
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _ensure_reachable(path: Path) -> None:
    """o+x on every parent directory, so the server's user can reach ``path``."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


async def wait_postgres(dsn: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until a connection to ``dsn`` succeeds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            con = await asyncpg.connect(dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(POLL_S)
        else:
            await con.close()
            return
