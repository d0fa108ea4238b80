"""The hub's local secrets: the embedded PostgreSQL is reachable by no other local user, and a
database password never travels on a command line (DESIGN §7)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from suishen.central.app import database_settings
from suishen.central.config import parse_config
from suishen.central.db import (
    PASSWORD_FILE,
    DatabaseError,
    EmbeddedPostgres,
    EmbeddedServerError,
    resolve_password,
)
from suishen.cli import main

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # the test venv's interpreter may sit where nobody can't go

# Run as nobody: try the server's unix socket and TCP loopback without a password, speaking
# the PostgreSQL startup message; print one word per attempt.  "open" would be a superuser
# session for anyone (trust auth); SCRAM asks for a password instead ("password").
PROBE = r"""
import socket, struct, sys
def startup():
    body = struct.pack("!I", 196608) + b"user\0postgres\0database\0postgres\0\0"
    return struct.pack("!I", len(body) + 4) + body
def attempt(family, address):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(address)
            s.sendall(startup())
            reply = s.recv(9)
    except PermissionError:
        return "denied"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "error:" + type(exc).__name__
    if reply[:1] == b"R":
        return "open" if struct.unpack("!I", reply[5:9])[0] == 0 else "password"
    return "other:" + repr(reply[:1])
tcp = ("127.0.0.1", int(sys.argv[2]))
print(attempt(socket.AF_UNIX, sys.argv[1]), attempt(socket.AF_INET, tcp))
"""


def as_nobody(*argv: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Not under pytest's basetemp (0700 root): the server runs as pgserver's user when root.
    root = Path(tempfile.mkdtemp(prefix="suishen-secrets-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_private(embedded: EmbeddedPostgres, state: Path) -> None:
    """File modes, what nobody gets on the socket and TCP, and that a password is needed."""
    password = state / PASSWORD_FILE
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    socket_dir = embedded.socket_dir
    info = socket_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert stat.S_IMODE(embedded.pgdata.stat().st_mode) == 0o700
    socket_path = socket_dir / ".s.PGSQL.5432"
    assert len(os.fsencode(socket_path)) <= 107
    assert as_nobody(SYSTEM_PYTHON, "-c", PROBE, str(socket_path), "5432") == "denied refused"

    async def without_password() -> None:
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(host=str(socket_dir), user="postgres", database="postgres")

    asyncio.run(without_password())


def test_embedded_server_is_private_and_refuses_unsafe_state(scratch: Path) -> None:
    """Under a state path too long for a socket inside it, the embedded PostgreSQL puts its
    socket in a private 0700 mkdtemp directory (not a shared one); its password file is 0600;
    the nobody user is denied the socket and finds no TCP listener, and even root needs the
    password (SCRAM).  The hub then refuses to start when the password file is readable by
    others or pg_hba.conf trusts local users (as clusters made before SCRAM did)."""
    state = scratch / ("deep-" * 20) / "state"
    embedded = EmbeddedPostgres(state)
    embedded.start()
    try:
        assert not embedded.socket_dir.is_relative_to(embedded.pgdata)
        check_private(embedded, state)
    finally:
        embedded.stop()

    (state / PASSWORD_FILE).chmod(0o644)
    with pytest.raises(EmbeddedServerError, match="0600"):
        EmbeddedPostgres(state).start()
    (state / PASSWORD_FILE).chmod(0o600)
    with (embedded.pgdata / "pg_hba.conf").open("a") as hba:
        hba.write("local all all trust\n")
    trusting = EmbeddedPostgres(state)
    with pytest.raises(EmbeddedServerError, match="without a password"):
        trusting.start()
    trusting.stop()


def test_embedded_server_short_path_socket_in_pgdata(scratch: Path) -> None:
    """With a short state path the socket lives in pgdata itself (0700): the same checks hold
    (nobody denied, no TCP, password required)."""
    state = scratch / "state"
    embedded = EmbeddedPostgres(state)
    embedded.start()
    try:
        assert embedded.socket_dir == embedded.pgdata
        check_private(embedded, state)
    finally:
        embedded.stop()


def test_cli_refuses_a_password_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`--dsn` with a password in it is refused (exit 2) before any connection is tried:
    other local users can read a process's arguments."""
    for dsn in ("postgresql://hub:s3cret@127.0.0.1/suishen", "postgresql://hub@/x?password=s3"):
        assert main(["hub", "migrate", "--dsn", dsn]) == 2
        assert "must not carry a password" in capsys.readouterr().err
        assert main(["hub", "watchlist", "remove", "ab" * 32, "--dsn", dsn]) == 2
        assert "must not carry a password" in capsys.readouterr().err


def test_password_from_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DSN's password comes from database.password_file (refused when group/other can read
    it) or else from the environment variable database.password_env, and is added to the DSN
    in the process only."""
    monkeypatch.setenv("HUB_DB_PW", "from-env")
    config = parse_config(
        {"database": {"dsn": "postgresql://hub@db.invalid/suishen", "password_env": "HUB_DB_PW"}},
        base=tmp_path,
    )
    settings = database_settings(config)
    assert settings.password == "from-env"
    assert "from-env" not in repr(settings)
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    secret.chmod(0o640)
    with pytest.raises(DatabaseError, match="readable by others"):
        resolve_password(file=secret)
    secret.chmod(0o600)
    config = parse_config(
        {"database": {"dsn": "postgresql://hub@db.invalid/suishen", "password_file": "pw"}},
        base=tmp_path,
    )
    assert database_settings(config).password == "from-file"
    assert resolve_password(env="SUISHEN_NOT_SET_ANYWHERE") is None
