"""Watchlist management on real PostgreSQL: by document or key, purpose from the fixed list,
case reference, bounded mandatory expiry, every change audited, expired entries leave the
next signed bundle by themselves."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.bundle_service import BundleService, read_body
from suishen.central.errors import Forbidden, NotFound
from suishen.central.store import watchlist as wl
from suishen.protocol.person import person_key

from .kit import PEPPER, add_user

NOW = dt.datetime.now(dt.UTC)
IDN = "110101199003078515"
KEY = "ab" * 32


def entry(**over: object) -> wl.WatchlistAdd:
    fields: dict[str, object] = {
        "level": "notify", "route": "police", "purpose": "wanted_person", "case_ref": "CASE-1",
        "expires_at": NOW + dt.timedelta(days=30), "person_key": KEY,
    }  # fmt: skip
    fields.update(over)
    return wl.WatchlistAdd(**fields)  # type: ignore[arg-type]


async def test_purposes_table_equals_the_fixed_list(con: asyncpg.Connection) -> None:
    """The table the purpose column references holds exactly PURPOSES."""
    rows = await con.fetch("SELECT purpose FROM watchlist_purposes ORDER BY purpose")
    assert tuple(r["purpose"] for r in rows) == wl.PURPOSES


async def test_add_by_document_stores_the_key_never_the_number(con: asyncpg.Connection) -> None:
    """A document becomes its person key under the pepper; neither the watchlist nor the audit
    holds the number."""
    analyst = await add_user(con, "ana", "analyst")
    added = await wl.add(
        con, analyst, entry(person_key=None, document=wl.Document(idt="RIC", idn=IDN)),
        pepper=PEPPER, now=NOW,
    )  # fmt: skip
    assert added.person_key == person_key(PEPPER, "RIC", IDN)
    assert added.purpose == "wanted_person" and added.case_ref == "CASE-1"
    assert added.added_by == "ana" and added.version == 1
    dump = await con.fetchval(
        "SELECT (SELECT string_agg(w::text, '') FROM watchlist w) || "
        "(SELECT string_agg(a::text, '') FROM audit a)"
    )
    assert IDN not in dump
    audit = await con.fetchrow("SELECT * FROM audit")
    assert audit["action"] == "watchlist_add" and audit["actor"] == "ana"
    assert audit["case_ref"] == "CASE-1" and audit["person_key"] == added.person_key


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"expires_at": NOW + dt.timedelta(days=91)}, "at most 90 days"),
        ({"expires_at": NOW - dt.timedelta(seconds=1)}, "future"),
        ({"purpose": "curiosity"}, "purpose must be one of"),
        ({"case_ref": "  "}, "case reference"),
        ({"level": "shoot"}, "level must be one of"),
        ({"person_key": "AB" * 32}, "lower-case hex"),
        ({"document": wl.Document(idt="RIC", idn=IDN)}, "exactly one"),
        ({"person_key": None, "document": wl.Document(idt="XX", idn=IDN)}, "not valid"),
    ],
)
async def test_bad_entries_are_refused_and_change_nothing(
    con: asyncpg.Connection, over: dict[str, object], words: str
) -> None:
    """Each bad argument: WatchlistError naming the problem (never the number), no row, no
    version, no audit."""
    analyst = await add_user(con, "ana", "analyst")
    with pytest.raises(wl.WatchlistError, match=words) as caught:
        await wl.add(con, analyst, entry(**over), pepper=PEPPER, now=NOW)
    assert IDN not in str(caught.value)
    assert await con.fetchval("SELECT count(*) FROM watchlist") == 0
    assert await con.fetchval("SELECT count(*) FROM audit") == 0
    assert await con.fetchval("SELECT version FROM bundle_versions WHERE kind = 'watchlist'") == 0


async def test_max_days_is_a_setting(con: asyncpg.Connection) -> None:
    """A shorter configured maximum refuses what the default allows."""
    analyst = await add_user(con, "ana", "analyst")
    with pytest.raises(wl.WatchlistError, match="at most 7 days"):
        await wl.add(con, analyst, entry(), pepper=PEPPER, now=NOW, max_days=7)


async def test_site_managers_cannot_change_the_watchlist(con: asyncpg.Connection) -> None:
    """Forbidden before anything is written."""
    manager = await add_user(con, "mgr", "site_manager")
    with pytest.raises(Forbidden):
        await wl.add(con, manager, entry(), pepper=PEPPER, now=NOW)
    assert await con.fetchval("SELECT count(*) FROM watchlist") == 0


async def test_change_and_remove_are_versioned_and_audited(con: asyncpg.Connection) -> None:
    """Each change is a new version with who changed it; removal is a tombstone; removing
    again is NotFound; the trail holds add, change, remove in order."""
    analyst = await add_user(con, "ana", "analyst")
    other = await add_user(con, "bob", "admin")
    await wl.add(con, analyst, entry(), pepper=None, now=NOW)
    changed = await wl.change(
        con, other, KEY, wl.WatchlistChange(level="deny", case_ref="CASE-2"), now=NOW
    )
    assert (changed.level, changed.case_ref, changed.changed_by, changed.version) == (
        "deny", "CASE-2", "bob", 2,
    )  # fmt: skip
    with pytest.raises(wl.WatchlistError, match="at most 90"):
        await wl.change(
            con, other, KEY, wl.WatchlistChange(expires_at=NOW + dt.timedelta(days=100)), now=NOW
        )
    removed = await wl.remove(con, analyst, KEY, reason="case closed")
    assert removed.removed_at is not None and removed.version == 3
    with pytest.raises(NotFound):
        await wl.remove(con, analyst, KEY)
    actions = await con.fetch("SELECT action, actor, case_ref FROM audit ORDER BY audit_id")
    assert [(r["action"], r["actor"], r["case_ref"]) for r in actions] == [
        ("watchlist_add", "ana", "CASE-1"),
        ("watchlist_change", "bob", "CASE-2"),
        ("watchlist_remove", "ana", "CASE-2"),
    ]
    assert await wl.list_entries(con, wl.WatchlistParams()) == []
    assert len(await wl.list_entries(con, wl.WatchlistParams(include_removed=True))) == 1


async def test_expired_entries_leave_the_next_bundle_by_themselves(db_pool: asyncpg.Pool) -> None:
    """An entry past its expiry is tombstoned by the bundle service's poll in a new version
    (audited as system), and the next signed bundle leaves it out; a live one stays."""
    async with db_pool.acquire() as con:
        analyst = await add_user(con, "ana", "analyst")
        await wl.add(con, analyst, entry(expires_at=NOW + dt.timedelta(hours=1)), pepper=None,
                     now=NOW)  # fmt: skip
        await wl.add(con, analyst, entry(person_key="cd" * 32), pepper=None, now=NOW)
    later = NOW + dt.timedelta(hours=2)
    service = BundleService(db_pool, ed25519.Ed25519PrivateKey.generate(), clock=later.timestamp)
    async with db_pool.acquire() as con:
        assert await service.expire_watchlist(con) == [KEY]
        assert await service.expire_watchlist(con) == []  # once
        version = await con.fetchval("SELECT version FROM bundle_versions WHERE kind='watchlist'")
        assert version == 3
        row = await con.fetchrow(
            "SELECT removed_by, version FROM watchlist WHERE person_key = $1", KEY
        )
        assert (row["removed_by"], row["version"]) == ("system", 3)
        assert (
            await con.fetchval(
                "SELECT count(*) FROM audit WHERE action = 'watchlist_expire' AND actor = 'system'"
            )
            == 1
        )
    await service.refresh()
    bundle = await service.get("watchlist")
    assert bundle is not None and bundle.version == 3
    async with db_pool.acquire() as con:
        body = await read_body(con, "watchlist", None)
    assert body["keys"] == bytes.fromhex("cd" * 32)  # the live entry only


async def test_the_old_cli_path_replacing_an_analyst_entry_keeps_the_table_valid(
    con: asyncpg.Connection,
) -> None:
    """`suishen hub watchlist add` (lists.watchlist_add, no expiry) over an analyst's entry:
    the purpose and case go with the replaced entry instead of breaking the table's check."""
    from suishen.central.store.lists import watchlist_add  # noqa: PLC0415

    analyst = await add_user(con, "ana", "analyst")
    await wl.add(con, analyst, entry(), pepper=None, now=NOW)
    await watchlist_add(con, KEY, level="deny", route="staff", reason="x")
    got = await wl.get(con, KEY)
    assert (got.purpose, got.expires_at, got.level) == (None, None, "deny")
