"""`suishen analyst ...` end to end on the test PostgreSQL: the same functions as the API, as a
named user, table/json/csv output, exports and reveals audited, exit codes as documented."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from pathlib import Path

import asyncpg
import pytest

from suishen.central.keys import init_keys, load_seal_key
from suishen.cli import main
from suishen.protocol.person import person_key

from .kit import PEPPER, Sealer, add_sites, add_user
from .test_api import CONTACT, INDEX, STRANGER, T0, add_visit

IDN = "110101199003078515"


async def _cli(*argv: str) -> int:
    """main() in a worker thread: the CLI runs its own event loop."""
    return await asyncio.to_thread(main, list(argv))


@pytest.fixture
def config(cli_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A hub config naming the test database, a state dir with the hub's keys, the pepper."""
    init_keys(tmp_path)
    monkeypatch.setenv("SUISHEN_PEPPER", PEPPER.decode())
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nstate_dir = "{tmp_path}"\n[database]\ndsn = "{cli_dsn}"\n')
    return str(path)


async def test_trace_in_three_formats_and_exports_audited(
    config: str, con: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trace command answers the constructed case (one contact, 30 minutes) as a table, as
    JSON and as CSV; the JSON and CSV runs are audited exports, the table is not."""
    await add_user(con, "ana", "analyst")
    await add_sites(con)
    await add_visit(con, INDEX, 1, 0, 60)
    await add_visit(con, CONTACT, 2, 30, 90)
    await add_visit(con, STRANGER, 3, 55, 120)
    until = (T0 + dt.timedelta(hours=3)).isoformat()
    base = ["analyst", "trace", "--as", "ana", "--config", config, "--person-key", INDEX,
            "--until", until]  # fmt: skip
    capsys.readouterr()
    assert await _cli(*base) == 0
    table = capsys.readouterr().out
    assert CONTACT in table and STRANGER not in table and "(1 rows)" in table
    assert await _cli(*base, "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert [c["overlap_minutes"] for c in document["contacts"]] == [30.0]
    assert await _cli(*base, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["person_key"] for r in rows] == [CONTACT]
    exports = await con.fetch("SELECT actor, target->>'what' AS what FROM audit ORDER BY 1, 2")
    assert [(r["actor"], r["what"]) for r in exports] == [
        ("ana", "cli:trace.csv"),
        ("ana", "cli:trace.json"),
    ]


async def test_reveal_needs_reason_and_case_and_is_audited(
    config: str, con: asyncpg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """reveal with an empty --case exits 2 and opens nothing; with both it prints the identity,
    and `analyst audit` (admin) shows the row; an analyst may not read the trail (4)."""
    await add_user(con, "ana", "analyst")
    await add_user(con, "root", "admin")
    key = await Sealer(load_seal_key(tmp_path)).scan(con, 1, T0, idn=IDN, name="张三明")
    base = ["analyst", "reveal", "--as", "ana", "--config", config, "--person-key", key]
    assert await _cli(*base, "--reason", "tracing", "--case", " ") == 2
    assert await con.fetchval("SELECT count(*) FROM audit") == 0
    capsys.readouterr()
    assert await _cli(*base, "--reason", "tracing", "--case", "CASE-3", "--format", "json") == 0
    (identity,) = json.loads(capsys.readouterr().out)["identities"]
    assert identity["idn"] == IDN
    assert await _cli("analyst", "audit", "--as", "ana", "--config", config) == 4
    assert await _cli("analyst", "audit", "--as", "root", "--config", config,
                      "--action", "reveal", "--format", "csv") == 0  # fmt: skip
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["actor"], row["case_ref"], row["reason"]) == ("ana", "CASE-3", "tracing")


async def test_watchlist_add_list_remove_and_exit_codes(
    config: str, con: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """add by document (number on stdin, never argv) -> the key under the pepper; list; remove;
    removing again exits 3; a site manager exits 4; an unknown user exits 3."""
    await add_user(con, "ana", "analyst")
    await add_user(con, "mgr", "site_manager")
    monkeypatch.setattr("sys.stdin", io.StringIO(IDN + "\n"))
    common = ["--config", config]
    assert await _cli("analyst", "watchlist", "add", "--as", "ana", *common, "--document-type",
                      "RIC", "--level", "notify", "--route", "police", "--purpose",
                      "missing_person", "--case", "MP-2", "--expires", "30d") == 0  # fmt: skip
    key = person_key(PEPPER, "RIC", IDN)
    capsys.readouterr()
    assert await _cli("analyst", "watchlist", "list", "--as", "ana", *common, "--format",
                      "json") == 0  # fmt: skip
    assert [e["person_key"] for e in json.loads(capsys.readouterr().out)] == [key]
    assert await _cli("analyst", "watchlist", "remove", key, "--as", "ana", *common) == 0
    assert await _cli("analyst", "watchlist", "remove", key, "--as", "ana", *common) == 3
    assert await _cli("analyst", "watchlist", "list", "--as", "mgr", *common) == 4
    assert await _cli("analyst", "retention", "--as", "nobody", *common) == 3
    assert await _cli("analyst", "retention", "--as", "ana", *common) == 0
    assert "scans" in capsys.readouterr().out


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """--help of the group and of a command lists every exit code."""
    with pytest.raises(SystemExit):
        main(["analyst", "reveal", "--help"])
    text = capsys.readouterr().out
    for code in ("0  done", "2  bad argument", "3  not found", "4  forbidden", "5  unavailable"):
        assert code in text


def test_csv_output_defuses_formulas() -> None:
    """A value a spreadsheet would run as a formula (a gateway-supplied masked name) is quoted."""
    from suishen.commands.analyst import emit  # noqa: PLC0415

    out = io.StringIO()
    assert emit([{"masked_name": "=HYPERLINK(1)", "site": "-x", "n": 3}], "csv", out) == 1
    assert out.getvalue().splitlines()[1] == "'=HYPERLINK(1),'-x,3"
