"""The signed lists' rows at the hub: watchlist, trust list and site rosters (DESIGN §6).

Every change (``watchlist_add``, ``watchlist_remove``, ``trust_add``, ``trust_remove``,
``roster_add``, ``roster_remove``) runs in the caller's transaction and bumps that list's row of
``bundle_versions`` in the same transaction (``UPDATE .. SET version = version + 1``: the row lock
orders concurrent changes, so versions are strictly monotonic and a version always names exactly
one set of rows).  Removals are tombstones (``removed_at``).  Each change is audited
(store/audit.py).  central/bundle_service.py builds, signs and serves the bundles.

Exceptions::

    ListChangeError (BadRequest, ValueError)   a list change with a bad argument (kid, key, entry)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any, Final

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.store import audit
from suishen.protocol.bundles import BUNDLE_KINDS
from suishen.protocol.errors import TrustListError
from suishen.protocol.listbodies import (
    raw_key,
)
from suishen.protocol.trust import trusted_key_from_json
from suishen.protocol.vocabulary import AlertRoute, WatchLevel, values

LEVELS: Final = tuple(sorted(values(WatchLevel)))
ROUTES: Final = tuple(sorted(values(AlertRoute)))


class ListChangeError(BadRequest, ValueError):
    """A list change with a bad argument (400 at a front door)."""


# --------------------------------------------------------------------------- changes


async def bump_version(con: Connection, kind: str) -> int:
    """Next version of ``kind`` (call inside the transaction that changes its rows)."""
    if kind not in BUNDLE_KINDS:
        raise ListChangeError(f"bundle kind must be one of {sorted(BUNDLE_KINDS)}")
    version: int = await con.fetchval(
        "UPDATE bundle_versions SET version = version + 1, updated_at = now() "
        "WHERE kind = $1 RETURNING version",
        kind,
    )
    return version


def _person_key(person_key: str) -> str:
    if raw_key(person_key) is None or person_key != person_key.lower():
        raise ListChangeError("a person key is 64 lower-case hex characters")
    return person_key


async def watchlist_add(
    con: Connection,
    person_key: str,
    *,
    level: str,
    route: str,
    reason: str,
    expires_at: dt.datetime | None = None,
    actor: str = "cli",
) -> int:
    """Add (or replace) a watchlist entry; return the new watchlist version."""
    _person_key(person_key)
    if level not in LEVELS or route not in ROUTES:
        raise ListChangeError(f"level must be one of {LEVELS} and route one of {ROUTES}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ListChangeError("expires_at must be timezone-aware")
    async with con.transaction():
        version = await bump_version(con, "watchlist")
        await con.execute(
            """
            INSERT INTO watchlist (person_key, level, route, reason, expires_at, version, added_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (person_key) DO UPDATE SET level = $2, route = $3, reason = $4,
                expires_at = $5, version = $6, added_by = $7, added_at = now(), removed_at = NULL,
                purpose = NULL, case_ref = '', changed_by = '', changed_at = NULL, removed_by = NULL
            """,
            person_key,
            level,
            route,
            reason,
            expires_at,
            version,
            actor,
        )
        await audit.record(
            con, actor, "watchlist_add", person_key=person_key, level=level, route=route,
            reason=reason, version=version,
        )  # fmt: skip
    return version


async def watchlist_remove(con: Connection, person_key: str, *, actor: str = "cli") -> int | None:
    """Remove an entry (tombstone); return the new version, or None when it was not listed."""
    _person_key(person_key)
    async with con.transaction():
        listed = await con.fetchval(
            "SELECT 1 FROM watchlist WHERE person_key = $1 AND removed_at IS NULL FOR UPDATE",
            person_key,
        )
        if not listed:
            return None
        version = await bump_version(con, "watchlist")
        await con.execute(
            "UPDATE watchlist SET removed_at = now(), version = $2 WHERE person_key = $1",
            person_key,
            version,
        )
        await audit.record(con, actor, "watchlist_remove", person_key=person_key, version=version)
    return version


def _kid_text(kid: str) -> str:
    """A kid as stored (base64 of the 8 bytes, as in trust entries); hex is accepted too."""
    try:
        raw = bytes.fromhex(kid) if len(kid) == 16 else base64.b64decode(kid, validate=True)
    except (ValueError, binascii.Error):
        raise ListChangeError(f"kid {kid!r} is neither base64 nor 16 hex characters") from None
    return base64.b64encode(raw).decode()


async def trust_add(con: Connection, entry: Any, *, actor: str = "cli") -> tuple[str, int]:
    """Add (or replace) a trusted key from its trust entry (``suishen issuer keygen``'s
    trust_entry.json); return (kid, new trust version)."""
    try:
        key = trusted_key_from_json(entry)
    except TrustListError as exc:
        raise ListChangeError(f"trust entry: {exc}") from exc
    document = key.to_json()
    kid = document["kid"]
    async with con.transaction():
        version = await bump_version(con, "trust")
        await con.execute(
            """
            INSERT INTO trust_keys (kid, entry, version) VALUES ($1, $2::jsonb, $3)
            ON CONFLICT (kid) DO UPDATE SET entry = $2::jsonb, version = $3, added_at = now(),
                removed_at = NULL
            """,
            kid,
            json.dumps(document),
            version,
        )
        await audit.record(con, actor, "trust_add", kid=kid, issuer=key.issuer, version=version)
    return kid, version


async def trust_remove(con: Connection, kid: str, *, actor: str = "cli") -> int | None:
    """Stop trusting a key; return the new version, or None when it was not trusted."""
    stored = _kid_text(kid)
    async with con.transaction():
        listed = await con.fetchval(
            "SELECT 1 FROM trust_keys WHERE kid = $1 AND removed_at IS NULL FOR UPDATE", stored
        )
        if not listed:
            return None
        version = await bump_version(con, "trust")
        await con.execute(
            "UPDATE trust_keys SET removed_at = now(), version = $2 WHERE kid = $1",
            stored,
            version,
        )
        await audit.record(con, actor, "trust_remove", kid=stored, version=version)
    return version


async def roster_add(
    con: Connection,
    site_id: str,
    person_key: str,
    *,
    masked_name: str = "",
    card_number: str | None = None,
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
) -> int:
    """Register (or update) a worker at a site; return the new roster version."""
    _person_key(person_key)
    async with con.transaction():
        version = await bump_version(con, "roster")
        await con.execute(
            """
            INSERT INTO workers (site_id, person_key, masked_name, card_number, valid_from,
                                 valid_until, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (site_id, person_key) DO UPDATE SET masked_name = $3, card_number = $4,
                valid_from = $5, valid_until = $6, version = $7, removed_at = NULL
            """,
            site_id,
            person_key,
            masked_name,
            card_number,
            valid_from,
            valid_until,
            version,
        )
    return version


async def roster_remove(con: Connection, site_id: str, person_key: str) -> int | None:
    """Deregister a worker (tombstone); return the new version, or None if not registered."""
    async with con.transaction():
        listed = await con.fetchval(
            "SELECT 1 FROM workers WHERE site_id = $1 AND person_key = $2 "
            "AND removed_at IS NULL FOR UPDATE",
            site_id,
            person_key,
        )
        if not listed:
            return None
        version = await bump_version(con, "roster")
        await con.execute(
            "UPDATE workers SET removed_at = now(), version = $3 "
            "WHERE site_id = $1 AND person_key = $2",
            site_id,
            person_key,
            version,
        )
    return version
