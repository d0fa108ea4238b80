"""`suishen hub visitor invite|list|cancel|arrivals` against a real database: the document
number comes from stdin (never argv), bad input exits 2 naming the field and writes nothing,
another tenant's invitation is not found (issue 13, item 3)."""

from __future__ import annotations

import asyncio
import io
import json

import asyncpg
import pytest

from suishen.central.store import users
from suishen.cli import main
from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.test_invitations import ric
from tests.central.web.conftest import TEST_HASHER

PEPPER = "q" * 32


async def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return await asyncio.to_thread(main, list(argv))


async def test_visitor_commands(
    cli_dsn: str, con: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """invite by RIC (number on stdin) for two lanes, list (json), arrivals; bad inputs exit 2
    naming the field with nothing written; another tenant cannot cancel it (3); its tenant can,
    once; an analyst may not invite (4)."""
    monkeypatch.setenv("SUISHEN_PEPPER", PEPPER)
    await con.execute("INSERT INTO sites (site_id, kind) VALUES ('tower', 'building')")
    for name, role in (("acme", Role.TENANT), ("globex", Role.TENANT), ("ana", Role.ANALYST)):
        await users.add_user(con, name, role=role, password="a long password", hasher=TEST_HASHER)
        if role is Role.TENANT:
            await users.grant_site(con, name, "tower")
    db = ("--dsn", cli_dsn)
    invite = ("hub", "visitor", "invite", "tower", "--document", "RIC", "--from", "now",
              "--until", "+8h", "--lanes", "lobby-in, lift-2", "--name", "王小明", *db)  # fmt: skip
    capsys.readouterr()
    assert await _cli(monkeypatch, *invite, "--as", "acme", "--format", "json", stdin=ric(7)) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert shown["person_key"] == person_key(PEPPER.encode(), "RIC", ric(7))
    assert (shown["lanes"], shown["masked_name"], shown["state"]) == (
        ["lift-2", "lobby-in"], "王*明", "current",
    )  # fmt: skip
    invitation = str(shown["invitation_id"])

    bad = [
        (("--until", "+8d"), ric(7), "valid_until"),  # longer than [visitors] max_days = 7
        (
            ("--from", "2026-12-05T10:00+08:00", "--until", "2026-12-05T09:00+08:00"),
            ric(7),
            "valid_until",
        ),
        ((), ric(7)[:-1] + ("1" if ric(7)[-1] != "1" else "2"), "id_number"),  # check digit
        (("--lanes", "a b;c"), ric(7), "lanes"),
        (("--from", "tomorrow"), ric(7), "valid_from"),
    ]
    for extra, number, field in bad:
        assert await _cli(monkeypatch, *invite, "--as", "acme", *extra, stdin=number) == 2
        error = capsys.readouterr().err
        assert field in error and number not in error
    refused = ("hub", "visitor", "invite", "tower", "--document", f"RIC:{ric(8)}", "--from",
               "now", "--until", "+1h", "--as", "acme", *db)  # fmt: skip
    assert await _cli(monkeypatch, *refused) == 2
    assert ric(8) not in capsys.readouterr().err
    assert await con.fetchval("SELECT count(*) FROM invitations") == 1
    assert await _cli(monkeypatch, *invite, "--as", "ana", stdin=ric(9)) == 4

    assert await _cli(monkeypatch, "hub", "visitor", "list", "tower", "--as", "globex", *db) == 0
    assert invitation not in capsys.readouterr().out.split()
    assert await _cli(monkeypatch, "hub", "visitor", "list", "tower", "--as", "acme", *db) == 0
    assert "王*明" in capsys.readouterr().out
    cancel = ("hub", "visitor", "cancel", invitation, *db)
    assert await _cli(monkeypatch, *cancel, "--as", "globex") == 3
    assert await _cli(monkeypatch, *cancel, "--as", "acme") == 0
    assert "cancelled" in capsys.readouterr().out
    assert await _cli(monkeypatch, *cancel, "--as", "acme") == 3
    arrivals = ("hub", "visitor", "arrivals", "tower", "--as", "acme", "--format", "json", *db)
    assert await _cli(monkeypatch, *arrivals) == 0
    assert json.loads(capsys.readouterr().out) == []
    actions = [r["action"] for r in await con.fetch("SELECT action FROM audit ORDER BY audit_id")]
    assert actions == ["invitation_add", "invitation_cancel"]
