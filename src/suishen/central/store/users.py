"""People using the hub: accounts, site grants, sessions, API tokens, login throttling (DESIGN §7).

Passwords are argon2id hashes (argon2-cffi ``PasswordHasher``); a hash made with older
parameters is replaced at the next successful login (``authenticate``).  Hashing is CPU work
(tens of milliseconds by design): the async functions run it in a worker thread.

Sessions and API tokens are random secrets handed to the client once; only their SHA-256 is
stored (deploy/sql/0006_web.sql).  Login throttling counts failures per key ('user:<name>',
'addr:<address>') in a window; reaching the limit locks the key until ``locked_until``.

Exceptions::

    UserChangeError (Conflict, ValueError)   unknown user or site, a duplicate username,
                                             a bad role or an empty password
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import secrets

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from suishen.central.connection import Connection
from suishen.central.errors import Conflict
from suishen.protocol.vocabulary import Role

DEFAULT_HASHER = PasswordHasher()  # argon2id with argon2-cffi's recommended parameters
MAX_PASSWORD_CHARS = 1024
MIN_PASSWORD_CHARS = 8
TOKEN_BYTES = 32


class UserChangeError(Conflict, ValueError):
    """A change to the users that cannot be made (409 at a front door)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord:
    """A user as stored (no hash)."""

    user_id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    site_ids: frozenset[str]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """A live session: whose, and the CSRF secret its forms carry."""

    user: UserRecord
    csrf_secret: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Throttle:
    """Failed logins of one key; locked while ``locked_until`` is in the future."""

    key: str
    failures: int
    locked_until: dt.datetime | None


def token_sha256(token: str) -> str:
    """The stored form of a session or API token."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_password_text(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise UserChangeError(
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return password


async def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    return await asyncio.to_thread(hasher.hash, check_password_text(password))


# --------------------------------------------------------------------------- users

_USER_SQL = """
SELECT u.user_id, u.username, u.display_name, u.role, u.disabled,
       coalesce(array_agg(s.site_id ORDER BY s.site_id) FILTER (WHERE s.site_id IS NOT NULL),
                '{}') AS site_ids
FROM users u LEFT JOIN user_sites s ON s.user_id = u.user_id
"""


def _user(row: asyncpg.Record) -> UserRecord:
    return UserRecord(
        user_id=row["user_id"],
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        disabled=row["disabled"],
        site_ids=frozenset(row["site_ids"]),
    )


async def add_user(
    con: Connection,
    username: str,
    *,
    role: Role,
    password: str,
    display_name: str = "",
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> int:
    """Create a user; its id.  Raises UserChangeError for a taken or malformed name."""
    if not 1 <= len(username) <= 64 or not username.isprintable() or username != username.strip():
        raise UserChangeError("a username has 1 to 64 printable characters, no outer spaces")
    hashed = await hash_password(password, hasher)
    try:
        user_id: int = await con.fetchval(
            "INSERT INTO users (username, display_name, role, password_hash, password_changed_at)"
            " VALUES ($1, $2, $3, $4, now()) RETURNING user_id",
            username,
            display_name,
            Role(role).value,
            hashed,
        )
    except asyncpg.UniqueViolationError as exc:
        raise UserChangeError(f"user {username!r} exists") from exc
    return user_id


async def set_password(
    con: Connection, username: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> None:
    """Replace a user's password and end every session of theirs."""
    hashed = await hash_password(password, hasher)
    user_id = await con.fetchval(
        "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE username = $1 "
        "RETURNING user_id",
        username,
        hashed,
    )
    if user_id is None:
        raise UserChangeError(f"no user {username!r}")
    await con.execute("DELETE FROM sessions WHERE user_id = $1", user_id)


async def grant_site(con: Connection, username: str, site_id: str, *, grant: bool = True) -> bool:
    """Grant (or with grant=False revoke) a site to a user; False when nothing changed."""
    user_id = await con.fetchval("SELECT user_id FROM users WHERE username = $1", username)
    if user_id is None:
        raise UserChangeError(f"no user {username!r}")
    if not grant:
        done = await con.fetchval(
            "DELETE FROM user_sites WHERE user_id = $1 AND site_id = $2 RETURNING true",
            user_id,
            site_id,
        )
        return bool(done)
    if not await con.fetchval("SELECT true FROM sites WHERE site_id = $1", site_id):
        raise UserChangeError(f"no site {site_id!r}")
    done = await con.fetchval(
        "INSERT INTO user_sites (user_id, site_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        user_id,
        site_id,
    )
    return bool(done)


async def list_users(con: Connection) -> tuple[UserRecord, ...]:
    rows = await con.fetch(_USER_SQL + " GROUP BY u.user_id ORDER BY u.username")
    return tuple(_user(row) for row in rows)


async def get_user(con: Connection, username: str) -> UserRecord | None:
    row = await con.fetchrow(_USER_SQL + " WHERE u.username = $1 GROUP BY u.user_id", username)
    return None if row is None else _user(row)


async def authenticate(
    con: Connection, username: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> UserRecord | None:
    """The user when the password is theirs and the account enabled, else None.

    A hash made with other parameters than ``hasher``'s is replaced (rehash on login).  An
    unknown user costs one hash too, so timing does not tell which usernames exist."""
    if len(password) > MAX_PASSWORD_CHARS or len(username) > 64:
        return None
    row = await con.fetchrow(
        "SELECT user_id, password_hash, disabled FROM users WHERE username = $1", username
    )
    stored = None if row is None else row["password_hash"]
    if stored is None:
        await asyncio.to_thread(hasher.hash, password)  # the same work as a real check
        return None
    try:
        await asyncio.to_thread(hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    if hasher.check_needs_rehash(stored):
        await con.execute(
            "UPDATE users SET password_hash = $2 WHERE user_id = $1",
            row["user_id"],
            await asyncio.to_thread(hasher.hash, password),
        )
    return await get_user(con, username)


# --------------------------------------------------------------------------- sessions


async def create_session(
    con: Connection, user_id: int, *, lifetime_s: float, client: str = ""
) -> tuple[str, str]:
    """A new session for the user: (cookie token, CSRF secret); only the token's hash is kept."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf = secrets.token_urlsafe(TOKEN_BYTES)
    await con.execute(
        "INSERT INTO sessions (token_sha256, user_id, csrf_secret, expires_at, client) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
        token_sha256(token),
        user_id,
        csrf,
        float(lifetime_s),
        client[:64],
    )
    return token, csrf


async def read_session(con: Connection, token: str, *, idle_s: float) -> SessionRecord | None:
    """The live session of a cookie token (its last_seen_at moved on), or None when unknown,
    expired, idle longer than ``idle_s`` or its user disabled."""
    row = await con.fetchrow(
        "UPDATE sessions SET last_seen_at = now() WHERE token_sha256 = $1 "
        "AND expires_at > now() AND last_seen_at > now() - make_interval(secs => $2) "
        "RETURNING user_id, csrf_secret, expires_at",
        token_sha256(token),
        float(idle_s),
    )
    if row is None:
        return None
    user = await _user_by_id(con, row["user_id"])
    if user is None or user.disabled:
        return None
    return SessionRecord(user=user, csrf_secret=row["csrf_secret"], expires_at=row["expires_at"])


async def end_session(con: Connection, token: str) -> None:
    await con.execute("DELETE FROM sessions WHERE token_sha256 = $1", token_sha256(token))


async def purge_sessions(con: Connection) -> int:
    """Delete expired sessions; how many."""
    result = await con.execute("DELETE FROM sessions WHERE expires_at <= now()")
    return int(result.rsplit(" ", 1)[-1])


async def _user_by_id(con: Connection, user_id: int) -> UserRecord | None:
    row = await con.fetchrow(_USER_SQL + " WHERE u.user_id = $1 GROUP BY u.user_id", user_id)
    return None if row is None else _user(row)


# --------------------------------------------------------------------------- API tokens


async def create_token(
    con: Connection, username: str, *, label: str = "", lifetime_days: int | None = None
) -> str:
    """A new bearer token for the user (shown once; stored hashed)."""
    user_id = await con.fetchval("SELECT user_id FROM users WHERE username = $1", username)
    if user_id is None:
        raise UserChangeError(f"no user {username!r}")
    token = "sst_" + secrets.token_urlsafe(TOKEN_BYTES)
    await con.execute(
        "INSERT INTO api_tokens (token_sha256, user_id, label, expires_at) VALUES ($1, $2, $3, "
        "CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(days => $4::int) END)",
        token_sha256(token),
        user_id,
        label[:200],
        lifetime_days,
    )
    return token


async def read_token(con: Connection, token: str) -> UserRecord | None:
    """The user of a live bearer token (last_used_at moved on), or None."""
    user_id = await con.fetchval(
        "UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = $1 "
        "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
        "RETURNING user_id",
        token_sha256(token),
    )
    if user_id is None:
        return None
    user = await _user_by_id(con, user_id)
    return None if user is None or user.disabled else user


# --------------------------------------------------------------------------- login throttling


async def throttle_state(con: Connection, keys: list[str]) -> tuple[Throttle, ...]:
    """The throttle rows of ``keys`` that are locked now."""
    rows = await con.fetch(
        "SELECT key, failures, locked_until FROM login_throttle "
        "WHERE key = ANY($1::text[]) AND locked_until > now()",
        keys,
    )
    return tuple(
        Throttle(key=r["key"], failures=r["failures"], locked_until=r["locked_until"]) for r in rows
    )


async def record_failure(
    con: Connection, key: str, *, limit: int, window_s: float, lock_s: float
) -> Throttle:
    """Count one failed login for ``key``; lock it for ``lock_s`` when it reaches ``limit``
    failures within ``window_s``."""
    row = await con.fetchrow(
        """
        INSERT INTO login_throttle AS t (key, failures, window_start) VALUES ($1, 1, now())
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                            THEN 1 ELSE t.failures + 1 END,
            window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                                THEN now() ELSE t.window_start END
        RETURNING failures, locked_until
        """,
        key[:200],
        float(window_s),
    )
    assert row is not None  # INSERT .. ON CONFLICT DO UPDATE .. RETURNING always returns it
    locked_until = row["locked_until"]
    if row["failures"] >= limit:
        locked_until = await con.fetchval(
            "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2), "
            "failures = 0, window_start = now() WHERE key = $1 RETURNING locked_until",
            key[:200],
            float(lock_s),
        )
    return Throttle(key=key, failures=row["failures"], locked_until=locked_until)


async def clear_failures(con: Connection, key: str) -> None:
    await con.execute("DELETE FROM login_throttle WHERE key = $1", key[:200])
