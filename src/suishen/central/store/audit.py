"""The audit trail: who changed or opened what, when and why (DESIGN §4, §7).

Every list change, every reveal of a sealed identity, every export and every access report
writes one row, in the caller's transaction, so an audited action and its audit row commit
together.  Reveals and access reports carry a reason and a case reference (the table refuses a
reveal row without both: deploy/sql/0009_analyst.sql).

- ``record(con, actor, action, ...)``: one row (the primitive every audited function calls);
- ``audit_export(con, user, what=..., rows=..., params=...)``: the row a front door writes when
  it hands out a file or a page of people-facing data (CSV of a trace, scan log export, ...);
- ``trail(con, params)``: the trail itself, newest first, keyset-paged (``before_id``), for
  ``suishen analyst audit``, GET /api/v1/audit and the admin page.

``Actor`` is what these functions need of a user: H1's ``auth.User`` fits it, and so does the
CLI's named user (``suishen analyst --as NAME``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final, Protocol

import msgspec

from suishen.central.connection import Connection
from suishen.central.errors import Forbidden

MAX_PAGE: Final = 1000
MAX_TEXT: Final = 500
MAX_CASE_REF: Final = 128


class Actor(Protocol):
    """Who does an audited thing: a hub user (``auth.User`` or the CLI's named user)."""

    @property
    def user_id(self) -> int | None: ...
    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...


async def record(
    con: Connection,
    actor: str,
    action: str,
    *,
    person_key: str | None = None,
    user_id: int | None = None,
    case_ref: str = "",
    site_id: str | None = None,
    **target: Any,
) -> int:
    """One audit row; ``target`` holds the action's details (a "reason" is also its own
    column; a ``site_id`` is its own column and stays in ``target`` too, as before 0009).
    Returns the row's audit_id."""
    if site_id is not None:
        target = {"site_id": site_id, **target}
    audit_id: int = await con.fetchval(
        "INSERT INTO audit (actor, user_id, action, person_key, site_id, target, reason, "
        "case_ref) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING audit_id",
        actor,
        user_id,
        action,
        person_key,
        site_id,
        json.dumps(target, default=str, ensure_ascii=False),
        str(target.get("reason", "")),
        case_ref,
    )
    return audit_id


async def audit_export(
    con: Connection,
    user: Actor,
    *,
    what: str,
    rows: int,
    params: Mapping[str, Any] | None = None,
    site_id: str | None = None,
    reason: str = "",
    case_ref: str = "",
) -> int:
    """Audit an export (``what``: e.g. "trace.csv", "scanlog.csv") of ``rows`` rows made with
    ``params``; front doors call it before they send the file.  Returns the audit_id."""
    return await record(
        con,
        user.username,
        "export",
        user_id=user.user_id,
        site_id=site_id,
        case_ref=case_ref[:MAX_CASE_REF],
        what=what,
        rows=rows,
        params=dict(params or {}),
        reason=reason[:MAX_TEXT],
    )


# --------------------------------------------------------------------------- the trail


class AuditParams(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of the audit trail (all optional); newest first, ``limit`` rows from
    ``before_id`` (exclusive) for the next page."""

    actor: str | None = None
    action: str | None = None
    person_key: str | None = None
    case_ref: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None
    limit: int = 100


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One audited action."""

    audit_id: int
    ts: dt.datetime
    actor: str
    action: str
    site_id: str | None
    person_key: str | None
    reason: str
    case_ref: str
    target: dict[str, Any]


async def trail(con: Connection, params: AuditParams) -> list[AuditRow]:
    """The audit rows matching ``params``, newest first (at most ``params.limit``, <= 1000)."""
    limit = max(1, min(params.limit, MAX_PAGE))
    rows = await con.fetch(
        """
        SELECT audit_id, ts, actor, action, site_id, person_key, reason, case_ref,
               target::text AS target
        FROM audit
        WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
          AND ($3::text IS NULL OR person_key = $3) AND ($4::text IS NULL OR case_ref = $4)
          AND ($5::timestamptz IS NULL OR ts >= $5) AND ($6::timestamptz IS NULL OR ts < $6)
          AND ($7::bigint IS NULL OR audit_id < $7)
        ORDER BY audit_id DESC
        LIMIT $8
        """,
        params.actor,
        params.action,
        params.person_key,
        params.case_ref,
        params.since,
        params.until,
        params.before_id,
        limit,
    )
    return [
        AuditRow(
            audit_id=r["audit_id"],
            ts=r["ts"],
            actor=r["actor"],
            action=r["action"],
            site_id=r["site_id"],
            person_key=r["person_key"],
            reason=r["reason"],
            case_ref=r["case_ref"],
            target=json.loads(r["target"]),
        )
        for r in rows
    ]


# --------------------------------------------------------------------------- who may


ANALYST_ROLES: Final = frozenset({"analyst", "admin"})


def require_role(user: Actor, roles: frozenset[str] = ANALYST_ROLES) -> Actor:
    """``user`` when its role is one of ``roles`` (default analyst, admin); else Forbidden.

    The front doors check roles first; the privacy functions check again, so a new front door
    cannot forget it."""
    if str(user.role) not in roles:
        raise Forbidden(f"role {user.role} may not do this", role=str(user.role))
    return user


class NamedUser(msgspec.Struct, frozen=True, kw_only=True):
    """A hub user named on the command line (``suishen analyst --as``): the audit actor."""

    user_id: int
    username: str
    role: str
    disabled: bool
    site_ids: frozenset[str]


async def named_user(con: Connection, username: str) -> NamedUser | None:
    """The users row of ``username`` with its granted sites, or None."""
    row = await con.fetchrow(
        "SELECT u.user_id, u.username, u.role, u.disabled, "
        "coalesce(array_agg(s.site_id) FILTER (WHERE s.site_id IS NOT NULL), '{}') AS site_ids "
        "FROM users u LEFT JOIN user_sites s ON s.user_id = u.user_id WHERE u.username = $1 "
        "GROUP BY u.user_id",
        username,
    )
    if row is None:
        return None
    return NamedUser(
        user_id=row["user_id"],
        username=row["username"],
        role=row["role"],
        disabled=row["disabled"],
        site_ids=frozenset(row["site_ids"]),
    )
