"""`suishen hub calendar publish|show` and `suishen hub site hours|group|emergency` end to end on
the test PostgreSQL: good files stored with a new bundle version, bad ones refused in one line
naming the key with nothing stored, unknown sites and users refused, roles enforced."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from suishen.cli import main

from .hubkit import OTHER_SITE, SITE, person, register

HOURS_TOML = """
[time_profiles.day]
mon = ["06:00-20:00"]
tue = ["06:00-20:00"]

[hours]
groups = { crew = "day" }
"""


async def _cli(*argv: str) -> int:
    """main() in a worker thread: the CLI runs its own event loop."""
    return await asyncio.to_thread(main, list(argv))


async def version(con: asyncpg.Connection, kind: str) -> int:
    return int(await con.fetchval("SELECT version FROM bundle_versions WHERE kind = $1", kind))


async def test_calendar_publish_and_show(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """publish stores a good calendar (show prints it); a file with a bad date exits 2 naming
    the date's place, and nothing more is stored."""
    good, bad = tmp_path / "cal.json", tmp_path / "bad.json"
    document = {"version": 2099001, "region": "CN", "holidays": ["2099-01-01"], "workdays": []}
    good.write_text(json.dumps(document))
    holidays = ["2099-01-01", "2099-13-01"]
    bad.write_text(json.dumps({**document, "version": 2099002, "holidays": holidays}))
    assert await _cli("hub", "calendar", "show", "--dsn", cli_dsn) == 0
    assert "no calendar published" in capsys.readouterr().out
    assert await _cli("hub", "calendar", "publish", str(good), "--dsn", cli_dsn) == 0
    assert await _cli("hub", "calendar", "publish", str(bad), "--dsn", cli_dsn) == 2
    err = capsys.readouterr().err
    assert "calendar.holidays[1]" in err and "2099-13-01" in err
    assert await version(con, "calendar") == 1
    assert await _cli("hub", "calendar", "show", "--dsn", cli_dsn) == 0
    assert "calendar 2099001 (CN)" in capsys.readouterr().out


async def test_site_hours_and_group(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hours from a TOML file in the gateway's format bump the roster; overlapping windows
    exit 2 naming the key and keep the stored hours; an unknown site exits 3; a worker's group
    is set."""
    await register(con, "gw-a", kind="construction")
    await con.execute(
        "INSERT INTO workers (site_id, person_key, version) VALUES ($1, $2, 0)", SITE, person(1)
    )
    good, bad = tmp_path / "hours.toml", tmp_path / "bad.toml"
    good.write_text(HOURS_TOML)
    bad.write_text(
        HOURS_TOML.replace('mon = ["06:00-20:00"]', 'mon = ["06:00-12:00", "11:00-20:00"]')
    )
    assert await _cli("hub", "site", "hours", SITE, str(good), "--dsn", cli_dsn) == 0
    assert await _cli("hub", "site", "hours", SITE, str(bad), "--dsn", cli_dsn) == 2
    assert "time_profiles.day.mon: windows overlap" in capsys.readouterr().err
    assert await _cli("hub", "site", "hours", "nowhere", str(good), "--dsn", cli_dsn) == 3
    assert await version(con, "roster") == 1
    assert await con.fetchval("SELECT profile FROM site_hour_groups") == "day"
    assert await _cli("hub", "site", "group", SITE, person(1), "crew", "--dsn", cli_dsn) == 0
    assert await con.fetchval("SELECT work_group FROM workers") == "crew"


async def test_site_emergency_needs_a_user_who_may(
    cli_dsn: str, con: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """An admin, or the site's own manager, declares and ends an emergency (audited, a new
    emergency version each); another site's manager exits 4, an unknown user 3, nothing
    stored for them."""
    await register(con, "gw-a")
    await register(con, "gw-b", OTHER_SITE)
    for name, role in (("chief", "admin"), ("mgr-a", "site_manager"), ("mgr-b", "site_manager")):
        await con.execute("INSERT INTO users (username, role) VALUES ($1, $2)", name, role)
    await con.execute(
        "INSERT INTO user_sites SELECT user_id, $1 FROM users WHERE username = 'mgr-a'", SITE
    )
    await con.execute(
        "INSERT INTO user_sites SELECT user_id, $1 FROM users WHERE username = 'mgr-b'", OTHER_SITE
    )
    command = ("hub", "site", "emergency", SITE)
    assert await _cli(*command, "on", "--note", "fire B1", "--as", "chief", "--dsn", cli_dsn) == 0
    assert await _cli(*command, "off", "--note", "clear", "--as", "mgr-b", "--dsn", cli_dsn) == 4
    assert await _cli(*command, "off", "--note", "clear", "--as", "nobody", "--dsn", cli_dsn) == 3
    assert await _cli(*command, "off", "--note", "clear", "--as", "mgr-a", "--dsn", cli_dsn) == 0
    rows = await con.fetch("SELECT active, by_user, note FROM site_emergencies ORDER BY version")
    assert [tuple(r) for r in rows] == [(True, "chief", "fire B1"), (False, "mgr-a", "clear")]
    assert await con.fetchval("SELECT count(*) FROM audit WHERE action = 'site_emergency'") == 2
    assert "emergency off at site-a" in capsys.readouterr().out
