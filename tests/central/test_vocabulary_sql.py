"""One vocabulary: every CHECK (column IN (...)) list of the migrated schema equals the values of
the enum that protocol.vocabulary defines for that column, so the hub's tables, the journal, the
wire format and the CLI cannot drift apart. Read from a real, fully migrated database."""

from __future__ import annotations

import enum
import re

import asyncpg

from suishen.protocol import vocabulary as v

# (table, column) -> its vocabulary; a column name alone applies to every table that has it.
BY_COLUMN: dict[str, type[enum.StrEnum]] = {
    "direction": v.Direction,
    "format": v.ScanFormat,
    "verdict": v.Verdict,
    "status": v.StatusColour,
    "outcome": v.PassageOutcomeKind,
    "level": v.WatchLevel,
    "route": v.AlertRoute,
    "step": v.AlertStep,
    "role": v.Role,
    "close_reason": v.CloseReason,
}
BY_TABLE_COLUMN: dict[tuple[str, str], type[enum.StrEnum]] = {
    ("sites", "kind"): v.SiteKind,
    ("alerts", "kind"): v.AlertKind,
    ("alerts", "state"): v.AlertStep,
    ("bundle_versions", "kind"): v.BundleKind,
    ("gateway_certificates", "retired_why"): v.CertificateRetired,
    ("ingest_conflicts", "kind"): v.RecordKind,
}

ANY_ARRAY = re.compile(r"\(?\(?(\w+) = ANY \(\(?ARRAY\[(.*?)\]\)?(?:::text\[\])?\)\)?")
LITERAL = re.compile(r"'([^']*)'::text")


async def check_lists(con: asyncpg.Connection) -> dict[tuple[str, str], frozenset[str]]:
    """Every `column IN (...)` CHECK of an ordinary or partitioned table (not partitions)."""
    rows = await con.fetch(
        """
        SELECT c.relname AS table_name, pg_get_constraintdef(k.oid) AS definition
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'c' AND n.nspname = current_schema() AND NOT c.relispartition
        """
    )
    found: dict[tuple[str, str], frozenset[str]] = {}
    for row in rows:
        for column, array in ANY_ARRAY.findall(row["definition"]):
            found[(row["table_name"], column)] = frozenset(LITERAL.findall(array))
    return found


async def test_every_check_list_is_a_vocabulary(db_pool: asyncpg.Pool) -> None:
    """Each CHECK list maps to one vocabulary enum and holds exactly its values."""
    async with db_pool.acquire() as con:
        lists = await check_lists(con)
    assert ("scans", "verdict") in lists, lists  # the parser reads this server's rendering
    for (table, column), allowed in sorted(lists.items()):
        vocabulary = BY_TABLE_COLUMN.get((table, column)) or BY_COLUMN.get(column)
        assert vocabulary is not None, f"{table}.{column} lists {sorted(allowed)}: no vocabulary"
        assert allowed == v.values(vocabulary), (
            f"{table}.{column}: SQL {sorted(allowed)} vs {vocabulary.__name__} "
            f"{sorted(v.values(vocabulary))}"
        )
