"""Hub commands find the hub's database the way `hub run` does (issue 14, item 3): `--config
hub.toml` (or ./hub.toml in the folder they run in); and none but `hub migrate` makes a new
embedded database, so a command run from the wrong folder says where it looked instead of
quietly starting an empty one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from suishen.cli import main


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def _hub_toml(folder: Path, dsn: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hub.toml"
    path.write_text(
        f'[hub]\nstate_dir = "state"\n\n[database]\ndsn = "{dsn}"\n'
        'password_env = "SUISHEN_DB_PASSWORD"\n',
        encoding="utf-8",
    )
    return path


async def test_a_command_in_the_wrong_folder_makes_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No hub.toml here and no state/pgdata: `hub user list` exits 2 with one line naming where
    it looked and the fix, and no database appears."""
    monkeypatch.chdir(tmp_path)
    assert await _cli("hub", "user", "list") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "no hub database in hub-state/pgdata" in err[0] and "--config hub.toml" in err[0]
    assert not (tmp_path / "hub-state").exists()


async def test_config_names_the_database(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--config FILE` uses the config's [database]; run from the config's folder, the
    command finds ./hub.toml by itself. Both reach the same database."""
    config = _hub_toml(tmp_path / "hub", cli_dsn)
    monkeypatch.chdir(tmp_path)
    assert await _cli("hub", "keys", "init", "--config", str(config)) == 0
    assert (tmp_path / "hub" / "state" / "keys" / "bundle.key").is_file()
    assert await _cli("hub", "migrate", "--config", str(config)) == 0
    add = ("hub", "gateway", "list")
    assert await _cli(*add, "--config", str(config)) == 0
    monkeypatch.chdir(tmp_path / "hub")
    assert await _cli(*add) == 0
    version = await con.fetchval("SELECT count(*) FROM schema_migrations")
    assert version >= 1


async def test_a_config_that_does_not_load_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken hub.toml: exit 2, one line naming the file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hub.toml").write_text("[hub\n", encoding="utf-8")
    assert await _cli("hub", "gateway", "list") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("suishen hub gateway list: hub.toml:"), err
