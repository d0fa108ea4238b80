"""`suishen hub user add|passwd|grant|list|token` against a real database; passwords come
from the environment or stdin, never argv (issue 10 item 1)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from suishen.central.store import users
from suishen.cli import main


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_user_commands(
    cli_dsn: str, con: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """add (password from $SUISHEN_USER_PASSWORD) with a site, list, grant, passwd, token:
    the stored hash verifies the password, the token's hash is stored, and an unknown site or
    a taken name exits 2."""
    await con.execute("INSERT INTO sites (site_id, kind) VALUES ('s1', 'building'), "
                      "('s2', 'hotel')")  # fmt: skip
    db = ("--dsn", cli_dsn)
    monkeypatch.setenv("SUISHEN_USER_PASSWORD", "first password")
    add = ("hub", "user", "add", "mgr", "--role", "site_manager", "--site", "s1")
    assert await _cli(*add, *db) == 0
    assert await _cli(*add, *db) == 2
    assert await _cli("hub", "user", "grant", "mgr", "s2", *db) == 0
    assert await _cli("hub", "user", "grant", "mgr", "nowhere", *db) == 2
    capsys.readouterr()
    assert await _cli("hub", "user", "list", *db) == 0
    assert "s1,s2" in capsys.readouterr().out
    monkeypatch.setenv("SUISHEN_USER_PASSWORD", "second password")
    assert await _cli("hub", "user", "passwd", "mgr", *db) == 0
    assert await users.authenticate(con, "mgr", "second password") is not None
    capsys.readouterr()
    assert await _cli("hub", "user", "token", "mgr", "--label", "ci", *db) == 0
    token = capsys.readouterr().out.strip()
    assert await con.fetchval("SELECT token_sha256 FROM api_tokens") == users.token_sha256(token)
    assert (await users.read_token(con, token)).username == "mgr"
