"""Migrations against a real PostgreSQL: once, in order, checked, atomic, race-free."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from suishen.central.db import DatabaseSettings, open_database
from suishen.central.migrate import (
    ChecksumMismatch,
    MigrationError,
    apply_migrations,
    load_migrations,
    sql_dir,
)
from suishen.central.partitions import ensure_partitions
from suishen.cli import main

from .hubkit import for_cli

EXPECTED_TABLES = {
    "sites",
    "gateways",
    "lanes",
    "scans",
    "passages",
    "epochs",
    "visits",
    "stays",
    "workers",
    "watchlist",
    "trust_keys",
    "bundle_versions",
    "alerts",
    "alert_events",
    "users",
    "user_sites",
    "audit",
    "schema_migrations",
}


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A private copy of deploy/sql that a test may edit."""
    target = tmp_path / "sql"
    shutil.copytree(sql_dir(), target)
    return target


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


async def test_applies_all_then_nothing(empty_dsn: str) -> None:
    """A fresh database gets every migration and the whole schema; a re-run applies nothing."""
    con = await _connect(empty_dsn)
    try:
        first = await apply_migrations(con)
        assert [m.version for m in first] == [m.version for m in load_migrations()]
        assert await apply_migrations(con) == []
        tables = {
            r["tablename"]
            for r in await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert tables >= EXPECTED_TABLES
        rows = await con.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["checksum"]) for r in rows] == [
            (m.version, m.checksum) for m in load_migrations()
        ]
    finally:
        await con.close()


async def test_scans_is_partitioned_with_the_key_including_ts(empty_dsn: str) -> None:
    """scans and passages are range-partitioned on ts with the key
    (site_id, gateway_id, journal_id, seq, ts) (0003)."""
    con = await _connect(empty_dsn)
    try:
        await apply_migrations(con)
        for table in ("scans", "passages"):
            strategy = await con.fetchval(
                "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = $1::regclass",
                table,
            )
            assert strategy == "r"
            key = await con.fetchval(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = $1::regclass AND contype = 'p'",
                table,
            )
            assert key == "PRIMARY KEY (site_id, gateway_id, journal_id, seq, ts)"
        indexes = {
            r["indexname"]
            for r in await con.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'scans'")
        }
        assert {"scans_site_ts_idx", "scans_person_ts_idx"} <= indexes
    finally:
        await con.close()


async def test_0003_keeps_existing_rows_and_high_water(empty_dsn: str) -> None:
    """Rows stored before 0003 stay, with journal_id '' (the journal before journal ids); a
    gateway's high water becomes that journal's; a new journal's row with the same seq (and even
    the same ts) is stored beside the old one, not taken for a duplicate."""
    before = [m for m in load_migrations() if m.version < 3]
    con = await _connect(empty_dsn)
    try:
        await apply_migrations(con, before)
        await con.execute("INSERT INTO sites (site_id, kind) VALUES ('s-1', 'building')")
        await con.execute(
            "INSERT INTO gateways (gateway_id, site_id, high_water) VALUES ('gw-1', 's-1', 7)"
        )
        await ensure_partitions(con, today=dt.date(2026, 1, 1))
        insert = (
            "INSERT INTO device_events (gateway_id, seq, ts, site_id{}) "
            "VALUES ('gw-1', 7, '2026-01-01T12:00:00Z', 's-1'{})"
        )
        await con.execute(insert.format("", ""))
        await apply_migrations(con)
        assert await con.fetchval("SELECT journal_id FROM device_events") == ""
        assert await con.fetch("SELECT journal_id, high_water FROM gateway_journals") == [("", 7)]
        await con.execute(insert.format(", journal_id", ", '00112233aabbccdd'"))
        assert await con.fetchval("SELECT count(*) FROM device_events WHERE seq = 7") == 2
        with pytest.raises(asyncpg.UniqueViolationError):
            await con.execute(insert.format("", ""))
    finally:
        await con.close()


async def test_changed_applied_migration_is_refused(empty_dsn: str, sql_copy: Path) -> None:
    """Editing a migration after it was applied is an error, and nothing further is applied."""
    con = await _connect(empty_dsn)
    try:
        await apply_migrations(con, load_migrations(sql_copy))
        init = sql_copy / "0001_init.sql"
        init.write_text(init.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
        (sql_copy / "9001_more.sql").write_text("CREATE TABLE more (x int);", encoding="utf-8")
        with pytest.raises(ChecksumMismatch) as caught:
            await apply_migrations(con, load_migrations(sql_copy))
        assert caught.value.version == 1
        assert await con.fetchval("SELECT to_regclass('more')") is None
    finally:
        await con.close()


async def test_unknown_applied_migration_is_refused(empty_dsn: str, sql_copy: Path) -> None:
    """A database that has a migration this hub lacks (a newer schema) is refused."""
    con = await _connect(empty_dsn)
    try:
        (sql_copy / "0999_extra.sql").write_text("CREATE TABLE extra (x int);", encoding="utf-8")
        await apply_migrations(con, load_migrations(sql_copy))
        (sql_copy / "0999_extra.sql").unlink()
        with pytest.raises(MigrationError, match="does not know"):
            await apply_migrations(con, load_migrations(sql_copy))
    finally:
        await con.close()


async def test_failing_migration_leaves_no_trace(empty_dsn: str, sql_copy: Path) -> None:
    """A migration that fails half-way is rolled back entirely and not recorded."""
    (sql_copy / "0999_broken.sql").write_text(
        "CREATE TABLE half (x int);\nSELECT * FROM no_such_table;", encoding="utf-8"
    )
    con = await _connect(empty_dsn)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await apply_migrations(con, load_migrations(sql_copy))
        assert await con.fetchval("SELECT to_regclass('half')") is None
        versions = await con.fetch("SELECT version FROM schema_migrations")
        # the real ones went in, each in its own transaction; the broken one left nothing
        assert [r["version"] for r in versions] == [m.version for m in load_migrations()]
    finally:
        await con.close()


async def test_concurrent_migrate_applies_once(empty_dsn: str) -> None:
    """Four hubs migrating at once: the advisory lock lets exactly one apply each migration."""
    cons = [await _connect(empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in cons))
        applied = [m.version for result in results for m in result]
        assert sorted(applied) == [m.version for m in load_migrations()]
        assert await cons[0].fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
    finally:
        for c in cons:
            await c.close()


async def test_refuses_a_connection_inside_a_transaction(empty_dsn: str) -> None:
    """Each migration needs its own transaction, so an open one is a caller error."""
    con = await _connect(empty_dsn)
    try:
        async with con.transaction():
            with pytest.raises(MigrationError):
                await apply_migrations(con)
    finally:
        await con.close()


def test_load_rejects_duplicate_versions(sql_copy: Path) -> None:
    """Two files with one number are a packaging error."""
    (sql_copy / "0001_again.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(MigrationError, match="two migrations"):
        load_migrations(sql_copy)


async def test_open_database_migrates_and_stages(empty_dsn: str) -> None:
    """open_database applies migrations, and every pool connection has its staging tables."""
    settings = DatabaseSettings(dsn=empty_dsn, max_size=2)
    async with open_database(settings) as pool, pool.acquire() as con, con.transaction():
        assert await con.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        assert await con.fetchval("SELECT count(*) FROM staging_scans") == 0
        assert await con.fetchval("SELECT count(*) FROM staging_passages") == 0


async def test_cli_migrate_with_dsn(
    empty_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`suishen hub migrate --dsn` (the password in the environment) applies the schema and
    creates partitions, then is a no-op."""
    empty_dsn = for_cli(empty_dsn, monkeypatch)
    assert await asyncio.to_thread(main, ["hub", "migrate", "--dsn", empty_dsn]) == 0
    assert "applied 0001_init" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["hub", "migrate", "--dsn", empty_dsn]) == 0
    out = capsys.readouterr().out
    assert "schema up to date" in out
    assert "partitions created: 0" in out


@pytest.fixture
def state_root() -> Iterator[Path]:
    """A private temp dir outside pytest's basetemp: a concurrent pytest session resets
    /tmp/pytest-of-<user> to mode 0700, which (run as root) cuts the 'pgserver' user off."""
    path = Path(tempfile.mkdtemp(prefix="suishen-test-state-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_embedded_server_under_the_state_dir(state_root: Path) -> None:
    """Without a DSN the hub starts pgserver in STATE/pgdata (unix socket only), creates its
    database and migrates; a handle left by a killed process does not keep it running."""
    if importlib.util.find_spec("pgserver") is None:  # a broken install, not a choice
        pytest.fail("embedded PostgreSQL needs the 'hub' extra")
    state = state_root / "state"
    settings = DatabaseSettings(state_dir=state, max_size=2)
    async with open_database(settings) as pool, pool.acquire() as con:
        assert await con.fetchval("SELECT current_database()") == "suishen"
        assert await con.fetchval("SHOW listen_addresses") == ""
        assert await con.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    assert not (state / "pgdata" / "postmaster.pid").exists()  # last handle let go: stopped

    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    (state / "pgdata" / ".handle_pids.json").write_text(f"[{dead.pid}]", encoding="utf-8")
    async with open_database(settings, migrate=False) as pool, pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    assert not (state / "pgdata" / "postmaster.pid").exists()
