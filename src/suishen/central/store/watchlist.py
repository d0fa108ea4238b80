"""Watchlist management for analysts: purpose, case, mandatory expiry, audited (DESIGN §4, §6).

An entry names a person by key only.  It is added by document (type, number, nationality:
turned into the person key with the deployment pepper here; the number itself is neither
stored, audited nor logged) or by key, with a level and a route, a purpose from the fixed list
``PURPOSES`` (the table ``watchlist_purposes`` holds the same list: a test keeps them equal), a
case reference and an expiry no later than ``max_days`` (a hub setting, default 90) from now.

Every add, change and removal bumps the watchlist bundle version in the same transaction
(``lists.bump_version``) and writes an audit row (who, which key, level, route, purpose, case).
``expire_due(con, now=...)`` tombstones the live entries whose expiry has passed, in one new
version, audited as ``system``: the bundle service runs it on every poll, so an expired entry
leaves the next signed bundle (and every gateway) by itself.

Exceptions: ``WatchlistError`` (BadRequest) for a bad argument; ``NotFound`` for an entry that
is not listed; ``Forbidden`` for a user who is not an analyst or admin.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.store import audit
from suishen.central.store.lists import LEVELS, ROUTES, bump_version
from suishen.protocol.listbodies import raw_key
from suishen.protocol.person import person_key as make_person_key

PURPOSES: Final = (
    "court_order",
    "missing_person",
    "public_health",
    "site_ban",
    "wanted_person",
)
DEFAULT_MAX_DAYS: Final = 90
MAX_CASE_REF: Final = 128
MAX_REASON: Final = 200


class WatchlistError(BadRequest, ValueError):
    """A watchlist change with a bad argument (400 at a front door)."""


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A person's identity document: type (RIC, PP, HMT, FPR), number, nationality (passports)."""

    idt: str
    idn: str
    nat: str | None = None


class WatchlistAdd(msgspec.Struct, frozen=True, kw_only=True):
    """A new entry: ``document`` or ``person_key`` (exactly one)."""

    level: str
    route: str
    purpose: str
    case_ref: str
    expires_at: dt.datetime
    document: Document | None = None
    person_key: str | None = None
    reason: str = ""


class WatchlistChange(msgspec.Struct, frozen=True, kw_only=True):
    """A change of a live entry; fields left out stay as they are."""

    level: str | None = None
    route: str | None = None
    purpose: str | None = None
    case_ref: str | None = None
    expires_at: dt.datetime | None = None
    reason: str | None = None


class WatchlistEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A watchlist entry as analysts see it (a person key, never a document number)."""

    person_key: str
    level: str
    route: str
    purpose: str | None
    case_ref: str
    reason: str
    expires_at: dt.datetime | None
    version: int
    added_by: str
    added_at: dt.datetime
    changed_by: str
    changed_at: dt.datetime | None
    removed_at: dt.datetime | None


class WatchlistParams(msgspec.Struct, frozen=True, kw_only=True):
    """Which entries to list: live ones (default) or also removed and expired ones."""

    include_removed: bool = False
    purpose: str | None = None
    case_ref: str | None = None
    limit: int = 500


# --------------------------------------------------------------------------- checks


def check_person_key(person_key: str) -> str:
    if raw_key(person_key) is None or person_key != person_key.lower():
        raise WatchlistError("a person key is 64 lower-case hex characters")
    return person_key


def key_of(document: Document, pepper: bytes | None) -> str:
    """The person key of ``document`` under the deployment pepper (the number is not kept)."""
    if pepper is None:
        raise WatchlistError("this hub has no pepper configured: give a person key instead")
    try:
        return make_person_key(pepper, document.idt, document.idn, document.nat)
    except ValueError:
        # The message could echo the number: say only which part is wrong.
        raise WatchlistError("the document type, number or nationality is not valid") from None


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise WatchlistError(f"{name} must be one of {', '.join(allowed)}", field=name)
    return value


def _check_case(case_ref: str) -> str:
    case_ref = case_ref.strip()
    if not case_ref or len(case_ref) > MAX_CASE_REF:
        raise WatchlistError(f"a case reference is required (1..{MAX_CASE_REF} characters)")
    return case_ref


def _check_expiry(expires_at: dt.datetime, *, now: dt.datetime, max_days: int) -> dt.datetime:
    if expires_at.tzinfo is None:
        raise WatchlistError("expires_at must carry a time zone")
    if expires_at <= now:
        raise WatchlistError("expires_at must be in the future")
    if expires_at > now + dt.timedelta(days=max_days):
        raise WatchlistError(f"expires_at may be at most {max_days} days ahead", max_days=max_days)
    return expires_at


def _check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON:
        raise WatchlistError(f"reason: at most {MAX_REASON} characters (a category, no names)")
    return reason


_COLUMNS: Final = (
    "person_key, level, route, purpose, case_ref, reason, expires_at, version, added_by, "
    "added_at, changed_by, changed_at, removed_at"
)


def _entry(row: object) -> WatchlistEntry:
    return WatchlistEntry(**dict(row))  # type: ignore[call-overload]


async def get(con: Connection, person_key: str) -> WatchlistEntry:
    """One entry (live or not); NotFound when the key was never listed."""
    row = await con.fetchrow(
        f"SELECT {_COLUMNS} FROM watchlist WHERE person_key = $1",  # noqa: S608 - constant
        check_person_key(person_key),
    )
    if row is None:
        raise NotFound("no watchlist entry for this person key")
    return _entry(row)


# --------------------------------------------------------------------------- changes


async def add(
    con: Connection,
    user: audit.Actor,
    entry: WatchlistAdd,
    *,
    pepper: bytes | None,
    now: dt.datetime,
    max_days: int = DEFAULT_MAX_DAYS,
) -> WatchlistEntry:
    """Add (or replace) an entry; see the module docstring."""
    audit.require_role(user)
    if (entry.document is None) == (entry.person_key is None):
        raise WatchlistError("give exactly one of document and person_key")
    key = (
        key_of(entry.document, pepper)
        if entry.document is not None
        else check_person_key(entry.person_key or "")
    )
    _check_choice("level", entry.level, LEVELS)
    _check_choice("route", entry.route, ROUTES)
    _check_choice("purpose", entry.purpose, PURPOSES)
    case_ref = _check_case(entry.case_ref)
    expires_at = _check_expiry(entry.expires_at, now=now, max_days=max_days)
    reason = _check_reason(entry.reason)
    async with con.transaction():
        replaced = await con.fetchval(
            "SELECT removed_at IS NULL FROM watchlist WHERE person_key = $1 FOR UPDATE", key
        )
        version = await bump_version(con, "watchlist")
        await con.execute(
            """
            INSERT INTO watchlist (person_key, level, route, reason, expires_at, version,
                                   added_by, purpose, case_ref)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (person_key) DO UPDATE SET level = $2, route = $3, reason = $4,
                expires_at = $5, version = $6, added_by = $7, added_at = now(), purpose = $8,
                case_ref = $9, changed_by = '', changed_at = NULL, removed_at = NULL,
                removed_by = NULL
            """,
            key,
            entry.level,
            entry.route,
            reason,
            expires_at,
            version,
            user.username,
            entry.purpose,
            case_ref,
        )
        await audit.record(
            con, user.username, "watchlist_add", person_key=key, user_id=user.user_id,
            case_ref=case_ref, level=entry.level, route=entry.route, purpose=entry.purpose,
            expires_at=expires_at.isoformat(), version=version, replaced=bool(replaced),
            by="document" if entry.document is not None else "key",
        )  # fmt: skip
        return await get(con, key)


async def change(
    con: Connection,
    user: audit.Actor,
    person_key: str,
    update: WatchlistChange,
    *,
    now: dt.datetime,
    max_days: int = DEFAULT_MAX_DAYS,
) -> WatchlistEntry:
    """Change a live entry (a new version); NotFound when it is not listed."""
    audit.require_role(user)
    check_person_key(person_key)
    fields: dict[str, object] = {}
    if update.level is not None:
        fields["level"] = _check_choice("level", update.level, LEVELS)
    if update.route is not None:
        fields["route"] = _check_choice("route", update.route, ROUTES)
    if update.purpose is not None:
        fields["purpose"] = _check_choice("purpose", update.purpose, PURPOSES)
    if update.case_ref is not None:
        fields["case_ref"] = _check_case(update.case_ref)
    if update.expires_at is not None:
        fields["expires_at"] = _check_expiry(update.expires_at, now=now, max_days=max_days)
    if update.reason is not None:
        fields["reason"] = _check_reason(update.reason)
    if not fields:
        raise WatchlistError("nothing to change")
    async with con.transaction():
        current = await con.fetchrow(
            "SELECT purpose, expires_at, case_ref FROM watchlist "
            "WHERE person_key = $1 AND removed_at IS NULL FOR UPDATE",
            person_key,
        )
        if current is None:
            raise NotFound("no live watchlist entry for this person key")
        if current["purpose"] is None and "purpose" not in fields:
            raise WatchlistError("an entry made without a purpose needs one in its first change")
        if current["expires_at"] is None and "expires_at" not in fields:
            raise WatchlistError("an entry without an expiry needs one in its first change")
        if not current["case_ref"] and "case_ref" not in fields:
            raise WatchlistError("an entry without a case reference needs one")
        version = await bump_version(con, "watchlist")
        names = sorted(fields)
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=4))
        await con.execute(
            f"UPDATE watchlist SET version = $2, changed_by = $3, changed_at = now(), {sets} "  # noqa: S608 - names from a fixed set
            "WHERE person_key = $1",
            person_key,
            version,
            user.username,
            *(fields[name] for name in names),
        )
        await audit.record(
            con, user.username, "watchlist_change", person_key=person_key,
            user_id=user.user_id, case_ref=str(fields.get("case_ref", current["case_ref"])),
            changed={k: str(v) for k, v in fields.items()}, version=version,
        )  # fmt: skip
        return await get(con, person_key)


async def remove(
    con: Connection, user: audit.Actor, person_key: str, *, reason: str = ""
) -> WatchlistEntry:
    """Remove a live entry (tombstone, a new version); NotFound when it is not listed."""
    audit.require_role(user)
    check_person_key(person_key)
    async with con.transaction():
        case_ref = await con.fetchval(
            "SELECT case_ref FROM watchlist WHERE person_key = $1 AND removed_at IS NULL "
            "FOR UPDATE",
            person_key,
        )
        if case_ref is None:
            raise NotFound("no live watchlist entry for this person key")
        version = await bump_version(con, "watchlist")
        await con.execute(
            "UPDATE watchlist SET removed_at = now(), removed_by = $3, version = $2 "
            "WHERE person_key = $1",
            person_key,
            version,
            user.username,
        )
        await audit.record(
            con, user.username, "watchlist_remove", person_key=person_key,
            user_id=user.user_id, case_ref=case_ref, version=version,
            reason=_check_reason(reason),
        )  # fmt: skip
        return await get(con, person_key)


async def list_entries(con: Connection, params: WatchlistParams) -> list[WatchlistEntry]:
    """Entries, newest version first: live ones, or all with ``include_removed``."""
    if params.purpose is not None:
        _check_choice("purpose", params.purpose, PURPOSES)
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM watchlist "  # noqa: S608 - constant columns
        "WHERE ($1 OR (removed_at IS NULL AND (expires_at IS NULL OR expires_at > now()))) "
        "AND ($2::text IS NULL OR purpose = $2) AND ($3::text IS NULL OR case_ref = $3) "
        "ORDER BY version DESC LIMIT $4",
        params.include_removed,
        params.purpose,
        params.case_ref,
        max(1, min(params.limit, 5000)),
    )
    return [_entry(r) for r in rows]


async def expire_due(con: Connection, *, now: dt.datetime) -> list[str]:
    """Tombstone the live entries whose expiry is at or before ``now`` in one new version
    (audited as ``system``); return their person keys (none: nothing changes)."""
    async with con.transaction():
        keys: list[str] = [
            r["person_key"]
            for r in await con.fetch(
                "SELECT person_key FROM watchlist WHERE removed_at IS NULL "
                "AND expires_at IS NOT NULL AND expires_at <= $1 "
                "ORDER BY person_key FOR UPDATE SKIP LOCKED",
                now,
            )
        ]
        if not keys:
            return []
        version = await bump_version(con, "watchlist")
        await con.execute(
            "UPDATE watchlist SET removed_at = $2, removed_by = 'system', version = $3 "
            "WHERE person_key = ANY($1::text[])",
            keys,
            now,
            version,
        )
        for key in keys:
            await audit.record(con, "system", "watchlist_expire", person_key=key, version=version)
    return keys
