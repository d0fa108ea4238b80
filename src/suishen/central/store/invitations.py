"""Visitor invitations: a tenant invites a visitor to a site for a window (issue 13, DESIGN §4-§6).

A visitor is named by an identity document (type, number, nationality for a passport), turned
into the person key with the deployment pepper by ``watchlist.key_of`` (the one function for
it; the number is neither stored, audited nor logged), or by the person key itself.  An
invitation is for one site, a window ``[valid_from, valid_until]`` (both inclusive, at most
``VisitorLimits.max_days`` long, ending in the future, starting at most ``max_ahead_days``
ahead) and some lanes or zones (none listed: every lane of the site).  The inviter may give a
name: only its masked form is stored.

Who: a ``tenant`` user (site-scoped through its granted sites) invites, lists and cancels its
own invitations -- the tenant of an invitation is the inviting user (``tenant_user_id``); a
``site_manager`` of the site and an ``admin`` see and cancel every invitation of the site, and
may invite on behalf of a tenant of the site (``InviteRequest.tenant``).  Anything outside
that (another site, another tenant's invitation) is NotFound, never confirmed.

Every invite, cancel and expiry bumps the roster bundle version in the same transaction (the
site's roster bundle carries its current invitations: ``roster_invitations``) and writes an
audit row.  ``expire_due`` marks invitations whose window has ended (a new roster version,
audited as ``system``): the bundle service runs it on every poll, so they leave the next bundle
by themselves.

Exceptions: ``InvitationInputError`` (BadRequest, ValueError; ``field`` names the bad field,
nothing is written); ``NotFound``; ``Forbidden`` for a role that may not do it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any, Final, Protocol

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, Forbidden, NotFound
from suishen.central.queries.sitekind import check_site_id
from suishen.central.scope import Scope
from suishen.central.store import audit
from suishen.central.store.lists import bump_version
from suishen.central.store.watchlist import Document, WatchlistError, key_of
from suishen.protocol.identity.cnid import CnidNumber, parse_cnid
from suishen.protocol.listbodies import Invitation
from suishen.protocol.person import mask_name

INVITERS: Final = frozenset({"tenant", "site_manager", "admin"})
READERS: Final = INVITERS | {"analyst"}
ALL_OF_SITE: Final = frozenset({"site_manager", "admin", "analyst"})  # see every invitation
SCOPED: Final = frozenset({"tenant", "site_manager"})
DEFAULT_MAX_DAYS: Final = 7
DEFAULT_MAX_AHEAD_DAYS: Final = 90
MAX_NAME: Final = 64
MAX_PLACES: Final = 32
MAX_ROWS: Final = 1000
# Deny reasons a tenant is not told (a watchlist hit, a health status): "withheld" instead.
PRIVATE_REASONS: Final = frozenset({"watchlist", "status_red", "status_yellow"})
WITHHELD: Final = "withheld"
_HEX_KEY: Final = re.compile(r"[0-9a-f]{64}")
_PLACE: Final = re.compile(r"[0-9A-Za-z_.:-]{1,64}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_PASSPORT: Final = re.compile(r"[0-9A-Z]{5,20}")
_NATION: Final = re.compile(r"[A-Z]{3}")


class InvitationInputError(BadRequest, ValueError):
    """An invitation's field is not acceptable (400 at a front door, nothing written);
    ``field`` names it, ``message`` is a fixed English text (a msgid the pages translate),
    ``detail`` a value that may be shown."""

    def __init__(self, field: str, message: str, detail: str = "") -> None:
        super().__init__(f"{field}: {message}" + (f" ({detail})" if detail else ""), field=field)
        self.field = field
        self.message = message
        self.detail = detail


class Inviter(Protocol):
    """Who acts: a hub user (web ``auth.User``, the CLI's named user)."""

    @property
    def user_id(self) -> int | None: ...
    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def site_ids(self) -> frozenset[str]: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VisitorLimits:
    """The hub's [visitors] limits."""

    max_days: int = DEFAULT_MAX_DAYS
    max_ahead_days: int = DEFAULT_MAX_AHEAD_DAYS


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InviteRequest:
    """An invitation to make: ``document`` or ``person_key`` (exactly one)."""

    site_id: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    document: Document | None = None
    person_key: str | None = None
    name: str = ""  # as the inviter gives it; only its masked form is kept
    lanes: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    tenant: str | None = None  # a site manager or admin inviting for this tenant (username)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InvitationRow:
    """An invitation as its tenant and the site's staff see it (a key, never a number)."""

    invitation_id: int
    site_id: str
    person_key: str
    tenant: str  # the tenant's username ('' when that user was deleted)
    masked_name: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    lanes: tuple[str, ...]
    zones: tuple[str, ...]
    version: int
    created_by: str
    created_at: dt.datetime
    cancelled_at: dt.datetime | None
    cancelled_by: str | None
    expired_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        """cancelled, expired, upcoming or current."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.expired_at is not None or self.valid_until < now:
            return "expired"
        return "upcoming" if self.valid_from > now else "current"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """A scan of an invited visitor at the site inside the invitation's window."""

    invitation_id: int
    masked_name: str
    ts: dt.datetime
    lane_id: str
    zone: str
    direction: str
    verdict: str
    reason: str | None


# --------------------------------------------------------------------------- checks


def scope_of(user: Inviter) -> Scope:
    return Scope.sites(user.site_ids) if str(user.role) in SCOPED else Scope.everywhere()


def _require(user: Inviter, roles: frozenset[str]) -> None:
    if str(user.role) not in roles:
        raise Forbidden(f"role {user.role} may not do this", role=str(user.role))


def check_name(name: str) -> str:
    """The masked form of the name the inviter gave ('' for none)."""
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvitationInputError("name", "too long", f"at most {MAX_NAME}")
    if _CONTROL.search(name):
        raise InvitationInputError("name", "control characters are not allowed")
    return mask_name(name) if name else ""


def check_places(field: str, values: Iterable[str]) -> tuple[str, ...]:
    """Lane or zone names: letters, digits and _ . : - (1..64 each), at most 32, sorted."""
    names = sorted({v.strip() for v in values if v.strip()})
    if len(names) > MAX_PLACES:
        raise InvitationInputError(field, "too many", f"at most {MAX_PLACES}")
    for name in names:
        if not _PLACE.fullmatch(name):
            raise InvitationInputError(field, "a name is 1-64 letters, digits, _ . : -")
    return tuple(names)


def split_places(text: str) -> tuple[str, ...]:
    """``a, b c`` -> ("a", "b", "c") (form fields and CLI options)."""
    return tuple(p for p in re.split(r"[\s,]+", text) if p)


def check_window(
    valid_from: dt.datetime, valid_until: dt.datetime, *, now: dt.datetime, limits: VisitorLimits
) -> None:
    """The window's rules; InvitationInputError naming valid_from or valid_until."""
    for field, value in (("valid_from", valid_from), ("valid_until", valid_until)):
        if value.tzinfo is None:
            raise InvitationInputError(field, "a time must carry its time zone")
    if valid_until <= valid_from:
        raise InvitationInputError("valid_until", "ends before it starts")
    if valid_until - valid_from > dt.timedelta(days=limits.max_days):
        raise InvitationInputError(
            "valid_until", "longer than the longest invitation", f"{limits.max_days} days"
        )
    if valid_until <= now:
        raise InvitationInputError("valid_until", "already over")
    if valid_from > now + dt.timedelta(days=limits.max_ahead_days):
        raise InvitationInputError(
            "valid_from", "starts too far ahead", f"at most {limits.max_ahead_days} days"
        )


def visitor_key(
    *, document: Document | None, person_key: str | None, pepper: bytes | None, today: dt.date
) -> str:
    """The visitor's person key from a document (checked: a resident ID's GB 11643 check digit,
    a passport's nationality) or given directly; InvitationInputError naming the field."""
    if (document is None) == (person_key is None):
        raise InvitationInputError("document", "give either a document or a person key")
    if person_key is not None:
        if not _HEX_KEY.fullmatch(person_key):
            raise InvitationInputError("person_key", "a person key is 64 lower-case hex characters")
        return person_key
    assert document is not None
    idt, number = document.idt.strip().upper(), document.idn.strip().upper()
    nat = (document.nat or "").strip().upper() or None
    if not number:
        raise InvitationInputError("id_number", "required")
    if len(number) > 32:
        raise InvitationInputError("id_number", "too long", "at most 32")
    if idt == "PP":
        if nat is None or not _NATION.fullmatch(nat):
            raise InvitationInputError("nationality", "a passport needs a three-letter nationality")
        if not _PASSPORT.fullmatch(number):
            raise InvitationInputError("id_number", "a passport number is 5-20 letters and digits")
    elif idt in ("RIC", "HMT", "FPR"):
        parsed = parse_cnid(number, at=today)
        if not isinstance(parsed, CnidNumber):
            raise InvitationInputError("id_number", "not a valid ID number", parsed.reason.value)
        if parsed.kind.value != idt:
            raise InvitationInputError(
                "id_type", "the number is of another type", parsed.kind.value
            )
        number = parsed.number
    else:
        raise InvitationInputError("id_type", "one of RIC, HMT, FPR, PP")
    try:
        return key_of(Document(idt=idt, idn=number, nat=nat), pepper)
    except WatchlistError as exc:
        raise InvitationInputError("id_number", str(exc)) from None


# --------------------------------------------------------------------------- reading

_COLUMNS: Final = """
    i.invitation_id, i.site_id, i.person_key, coalesce(u.username, '') AS tenant,
    i.masked_name, i.valid_from, i.valid_until, i.lanes, i.zones, i.version, i.created_by,
    i.created_at, i.cancelled_at, i.cancelled_by, i.expired_at
"""
_FROM: Final = "FROM invitations i LEFT JOIN users u ON u.user_id = i.tenant_user_id"


def _row(record: Any) -> InvitationRow:
    values = dict(record)
    values["lanes"] = tuple(values["lanes"])
    values["zones"] = tuple(values["zones"])
    return InvitationRow(**values)


def _owner_filter(user: Inviter) -> int | None:
    """The tenant_user_id a user's listing is limited to (None: the whole site)."""
    return None if str(user.role) in ALL_OF_SITE else (user.user_id or -1)


async def _require_site(con: Connection, user: Inviter, site_id: str) -> None:
    await site_choice(con, user, site_id)


async def get(con: Connection, user: Inviter, invitation_id: int) -> InvitationRow:
    """One invitation the user may see; NotFound otherwise (never confirmed)."""
    _require(user, READERS)
    row = await con.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE i.invitation_id = $1 "
        f"AND {Scope.sql('$2', 'i.site_id')} AND ($3::bigint IS NULL OR i.tenant_user_id = $3)",
        invitation_id,
        scope_of(user).sql_param(),
        _owner_filter(user),
    )
    if row is None:
        raise NotFound("no such invitation")
    return _row(row)


async def list_invitations(
    con: Connection, user: Inviter, site_id: str, *, include_past: bool = False
) -> list[InvitationRow]:
    """The site's invitations the user may see (a tenant: its own), newest window first; live
    ones only (not cancelled, not over) unless ``include_past``."""
    _require(user, READERS)
    await _require_site(con, user, site_id)
    rows = await con.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE i.site_id = $1 "
        "AND ($2::bigint IS NULL OR i.tenant_user_id = $2) "
        "AND ($3 OR (i.cancelled_at IS NULL AND i.expired_at IS NULL AND i.valid_until > now())) "
        "ORDER BY i.valid_from DESC, i.invitation_id DESC LIMIT $4",
        site_id,
        _owner_filter(user),
        include_past,
        MAX_ROWS,
    )
    return [_row(r) for r in rows]


async def arrivals(
    con: Connection, user: Inviter, site_id: str, *, days: int = 30
) -> list[Arrival]:
    """Scans (allowed or denied) of the user's invited visitors at the site inside their
    invitations' windows, in the last ``days`` days, newest first, with masked names.  A
    tenant is not told a private deny reason (``PRIVATE_REASONS``: "withheld")."""
    _require(user, READERS)
    await _require_site(con, user, site_id)
    rows = await con.fetch(
        """
        SELECT i.invitation_id, coalesce(nullif(i.masked_name, ''), s.masked_name, '')
               AS masked_name, s.ts, s.lane_id, s.zone, s.direction, s.verdict, s.reason
        FROM invitations i
        JOIN scans s ON s.site_id = i.site_id AND s.person_key = i.person_key
             AND s.ts BETWEEN i.valid_from AND i.valid_until
        WHERE i.site_id = $1 AND ($2::bigint IS NULL OR i.tenant_user_id = $2)
          AND i.valid_until > now() - make_interval(days => $3)
          AND s.ts > now() - make_interval(days => $3)
        ORDER BY s.ts DESC, i.invitation_id LIMIT $4
        """,
        site_id,
        _owner_filter(user),
        max(1, min(days, 366)),
        MAX_ROWS,
    )
    hide = str(user.role) == "tenant"
    return [
        Arrival(**{**dict(r), "reason": WITHHELD})
        if hide and r["reason"] in PRIVATE_REASONS
        else Arrival(**dict(r))
        for r in rows
    ]


def _posix(value: dt.datetime) -> int:
    return int(value.timestamp())


async def roster_invitations(con: Connection, site_id: str | None) -> list[tuple[str, Invitation]]:
    """The site's current invitations (not cancelled, not expired, not over) for its roster
    bundle body."""
    rows = await con.fetch(
        "SELECT person_key, site_id, valid_from, valid_until, lanes, zones FROM invitations "
        "WHERE site_id = $1 AND cancelled_at IS NULL AND expired_at IS NULL "
        "AND valid_until > now() ORDER BY person_key, invitation_id",
        site_id,
    )
    return [
        (
            r["person_key"],
            Invitation(
                site_id=r["site_id"],
                valid_from=_posix(r["valid_from"]),
                valid_to=_posix(r["valid_until"]),
                lanes=frozenset(r["lanes"]),
                zones=frozenset(r["zones"]),
            ),
        )
        for r in rows
    ]


# --------------------------------------------------------------------------- changes


async def _tenant_id(con: Connection, user: Inviter, site_id: str, tenant: str | None) -> int:
    """The tenant an invitation belongs to: the inviting tenant itself, or (a site manager or
    admin) the named tenant of the site, else the inviting user."""
    if str(user.role) == "tenant":
        if tenant is not None and tenant != user.username:
            raise InvitationInputError("tenant", "a tenant invites for itself only")
        return user.user_id or -1
    if tenant is None:
        return user.user_id or -1
    found = await con.fetchval(
        "SELECT u.user_id FROM users u JOIN user_sites s ON s.user_id = u.user_id "
        "WHERE u.username = $1 AND u.role = 'tenant' AND NOT u.disabled AND s.site_id = $2",
        tenant,
        site_id,
    )
    if found is None:
        raise InvitationInputError("tenant", "not a tenant of this site")
    return int(found)


async def invite(
    con: Connection,
    user: Inviter,
    request: InviteRequest,
    *,
    pepper: bytes | None,
    now: dt.datetime,
    limits: VisitorLimits = VisitorLimits(),
) -> InvitationRow:
    """Make an invitation (see the module docstring); everything is checked before anything
    is written."""
    _require(user, INVITERS)
    await _require_site(con, user, request.site_id)
    check_window(request.valid_from, request.valid_until, now=now, limits=limits)
    key = visitor_key(
        document=request.document, person_key=request.person_key, pepper=pepper, today=now.date()
    )
    masked = check_name(request.name)
    lanes = check_places("lanes", request.lanes)
    zones = check_places("zones", request.zones)
    async with con.transaction():
        tenant_id = await _tenant_id(con, user, request.site_id, request.tenant)
        version = await bump_version(con, "roster")
        invitation_id: int = await con.fetchval(
            """
            INSERT INTO invitations (site_id, person_key, tenant_user_id, masked_name,
                valid_from, valid_until, lanes, zones, version, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING invitation_id
            """,
            request.site_id,
            key,
            tenant_id,
            masked,
            request.valid_from,
            request.valid_until,
            list(lanes),
            list(zones),
            version,
            user.username[:64],
        )
        await audit.record(
            con, user.username, "invitation_add", person_key=key, user_id=user.user_id,
            site_id=request.site_id, invitation_id=invitation_id, tenant_user_id=tenant_id,
            valid_from=request.valid_from.isoformat(), valid_until=request.valid_until.isoformat(),
            lanes=list(lanes), zones=list(zones), version=version,
            by="document" if request.document is not None else "key",
        )  # fmt: skip
        return await get(con, user, invitation_id)


async def cancel(con: Connection, user: Inviter, invitation_id: int) -> InvitationRow:
    """Cancel a live invitation the user may see (a new roster version); NotFound when it is
    not theirs, not live, or not there."""
    _require(user, INVITERS)
    async with con.transaction():
        current = await get(con, user, invitation_id)
        live = await con.fetchval(
            "SELECT true FROM invitations WHERE invitation_id = $1 AND cancelled_at IS NULL "
            "AND expired_at IS NULL AND valid_until > now() FOR UPDATE",
            invitation_id,
        )
        if not live:
            raise NotFound("no such live invitation")
        version = await bump_version(con, "roster")
        await con.execute(
            "UPDATE invitations SET cancelled_at = now(), cancelled_by = $2, version = $3 "
            "WHERE invitation_id = $1",
            invitation_id,
            user.username[:64],
            version,
        )
        await audit.record(
            con, user.username, "invitation_cancel", person_key=current.person_key,
            user_id=user.user_id, site_id=current.site_id, invitation_id=invitation_id,
            version=version,
        )  # fmt: skip
        return await get(con, user, invitation_id)


async def expire_due(con: Connection, *, now: dt.datetime) -> list[int]:
    """Mark the live invitations whose window ended at or before ``now`` expired, in one new
    roster version (audited as ``system``); return their ids (none: nothing changes)."""
    async with con.transaction():
        rows = await con.fetch(
            "SELECT invitation_id, site_id, person_key FROM invitations "
            "WHERE cancelled_at IS NULL AND expired_at IS NULL AND valid_until <= $1 "
            "ORDER BY invitation_id FOR UPDATE SKIP LOCKED",
            now,
        )
        if not rows:
            return []
        ids = [int(r["invitation_id"]) for r in rows]
        version = await bump_version(con, "roster")
        await con.execute(
            "UPDATE invitations SET expired_at = $2, version = $3 "
            "WHERE invitation_id = ANY($1::bigint[])",
            ids,
            now,
            version,
        )
        for r in rows:
            await audit.record(
                con, "system", "invitation_expire", person_key=r["person_key"],
                site_id=r["site_id"], invitation_id=int(r["invitation_id"]), version=version,
            )  # fmt: skip
    return ids


# --------------------------------------------------------------------------- by name


async def named_inviter(con: Connection, username: str) -> audit.NamedUser:
    """The enabled hub user ``username``; NotFound otherwise."""
    row = await audit.named_user(con, username)
    if row is None or row.disabled:
        raise NotFound(f"no enabled hub user {username!r}")
    return row


async def invite_by_document(
    con: Connection,
    site_id: str,
    *,
    as_user: str,
    idt: str,
    idn: str,
    nat: str | None = None,
    valid_from: dt.datetime,
    valid_until: dt.datetime,
    lanes: Iterable[str] = (),
    zones: Iterable[str] = (),
    name: str = "",
    pepper: bytes | None,
    now: dt.datetime | None = None,
    limits: VisitorLimits = VisitorLimits(),
) -> InvitationRow:
    """Invite a visitor by document number to ``site_id`` as the hub user ``as_user`` (the
    demo's and scripts' entry point); the same checks and audit as every front door."""
    user = await named_inviter(con, as_user)
    request = InviteRequest(
        site_id=site_id, valid_from=valid_from, valid_until=valid_until,
        document=Document(idt=idt, idn=idn, nat=nat), name=name, lanes=tuple(lanes),
        zones=tuple(zones),
    )  # fmt: skip
    when = now if now is not None else dt.datetime.now(dt.UTC)
    return await invite(con, user, request, pepper=pepper, now=when, limits=limits)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SiteChoice:
    """A site a user may invite to (the pages' site picker)."""

    site_id: str
    name: str
    timezone: str


async def sites_for(con: Connection, user: Inviter) -> list[SiteChoice]:
    """The sites in the user's scope, by id."""
    rows = await con.fetch(
        f"SELECT site_id, name, timezone FROM sites WHERE {Scope.sql('$1')} ORDER BY site_id",  # noqa: S608 - constant clause
        scope_of(user).sql_param(),
    )
    return [SiteChoice(**dict(r)) for r in rows]


async def site_choice(con: Connection, user: Inviter, site_id: str) -> SiteChoice:
    """One site in the user's scope; NotFound otherwise (never confirmed)."""
    scope_of(user).require(check_site_id(site_id))
    row = await con.fetchrow(
        "SELECT site_id, name, timezone FROM sites WHERE site_id = $1", site_id
    )
    if row is None:
        raise NotFound(f"no site {site_id!r}", site_id=site_id)
    return SiteChoice(**dict(row))
