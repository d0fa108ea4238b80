"""Schema migrations: numbered SQL files in deploy/sql, applied in order, each exactly once.

A migration is ``NNNN_name.sql`` (``0001_init.sql``).  ``apply_migrations(con)``:

1. takes a session advisory lock (MIGRATION_LOCK_KEY), so two hubs starting at once apply
   each migration once: the second waits, then finds nothing to do;
2. creates ``schema_migrations`` if missing;
3. checks every applied migration against the file of the same version: a changed file
   (SHA-256 of its bytes) or a missing one is an error, and nothing is applied;
4. applies each pending file in its own transaction, together with its schema_migrations row,
   so a failing migration leaves no trace.

Exceptions::

    MigrationError              the database and the migration files disagree
     +-- ChecksumMismatch       an applied migration's file changed since
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from suishen.central.connection import Connection

# src/suishen/central/migrate.py -> the repository's deploy/sql; SUISHEN_SQL_DIR overrides.
DEFAULT_SQL_DIR = Path(__file__).resolve().parents[3] / "deploy" / "sql"

# pg_advisory_lock key: int64 from the text "suishen:migrate".
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"suishen:migrate").digest()[:8], "big", signed=True
)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The database and the migration files disagree (or a file is malformed)."""

    def __init__(self, message: str, *, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


class ChecksumMismatch(MigrationError):
    """A migration recorded as applied differs from its file now."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str  # hex SHA-256 of the file's bytes

    @classmethod
    def from_bytes(cls, version: int, name: str, data: bytes) -> Migration:
        return cls(
            version=version,
            name=name,
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )


def sql_dir() -> Path:
    """Where migrations are read from: $SUISHEN_SQL_DIR, else the repository's deploy/sql."""
    env = os.environ.get("SUISHEN_SQL_DIR")
    return Path(env) if env else DEFAULT_SQL_DIR


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read ``NNNN_name.sql`` files in version order; other files are ignored."""
    directory = sql_dir() if directory is None else directory
    if not directory.is_dir():
        raise MigrationError(f"no migrations directory at {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        match = _FILE_NAME.match(path.name)
        if match is None:
            continue
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"two migrations numbered {version:04d}", version=version)
        found[version] = Migration.from_bytes(version, match["name"], path.read_bytes())
    if not found:
        raise MigrationError(f"no migrations in {directory}")
    return [found[v] for v in sorted(found)]


async def applied_migrations(con: Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of what the database records as applied ({} if none)."""
    if not await con.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return {}
    rows = await con.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {r["version"]: (r["name"], r["checksum"]) for r in rows}


def _check_applied(
    migrations: Sequence[Migration], applied: dict[int, tuple[str, str]]
) -> list[Migration]:
    """Verify applied ones against their files; return the pending ones."""
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} that this hub does not know; "
                "is the hub older than the database?",
                version=version,
            )
        if migration.checksum != checksum:
            raise ChecksumMismatch(
                f"migration {version:04d}_{name} was changed after it was applied "
                f"(recorded sha256 {checksum[:12]}.., file {migration.checksum[:12]}..); "
                "add a new migration instead of editing an applied one",
                version=version,
            )
    return [m for m in migrations if m.version not in applied]


async def apply_migrations(
    con: Connection, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply pending migrations (see the module doc); return those applied now, in order.

    ``con`` must not be inside a transaction (each migration gets its own).
    """
    if con.is_in_transaction():
        raise MigrationError("apply_migrations needs a connection outside any transaction")
    migrations = load_migrations() if migrations is None else list(migrations)
    await con.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await con.execute(_CREATE_TABLE)
        pending = _check_applied(migrations, await applied_migrations(con))
        for migration in pending:
            async with con.transaction():
                await con.execute(migration.sql)
                await con.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return pending
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
