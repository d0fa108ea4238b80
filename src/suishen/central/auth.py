"""Who is asking: sessions, bearer tokens, roles, CSRF and login throttling (DESIGN §7).

Every request to the web listener passes ``auth_middleware``:

- routes marked ``@public`` (login page, language switch, callbacks with their own signature)
  and static files pass without a user; an unsafe method on them still gets the Origin check
  when the browser sent an Origin (a login form posted from another site is refused);
- ``Authorization: Bearer <token>`` (``suishen hub user token``): the token's user; no CSRF
  check (a browser never sends that header by itself);
- else the ``suishen_session`` cookie (HttpOnly, SameSite=Strict, Secure over TLS): a
  server-side session (central/store/users.py), idle and absolute limits.  Every unsafe method
  (POST, PUT, PATCH, DELETE) must come from our own origin (Origin, else Referer, must be
  present and equal this listener's origin) and carry the session's CSRF token in the form
  field ``csrf_token`` or the ``X-CSRF-Token`` header (``hmac.compare_digest``);
- nobody: a browser GET is redirected to /login?next=..., anything else is 401.

Views read the user with ``current_user(request)`` and check roles with ``require_role``; a
site manager's or tenant's ``User.scope`` is their granted sites, which every query requires.

Logins (``log_in``) are throttled per username and per client address: too many failures in
a window lock the key for a while; a locked attempt is refused without checking the password
and logged once as ``login_locked`` (username and address; never the password).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import structlog
from aiohttp import web
from argon2 import PasswordHasher
from yarl import URL

from suishen.central.db import DB_POOL
from suishen.central.errors import Forbidden, HubError, Unauthorized
from suishen.central.scope import Scope
from suishen.central.store import users as store
from suishen.protocol.vocabulary import Role

log = structlog.get_logger("suishen.central.auth")

SESSION_COOKIE = "suishen_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SCOPED_ROLES = frozenset({Role.SITE_MANAGER, Role.TENANT})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
MAX_TOKEN_CHARS = 200
_PUBLIC = "__suishen_public__"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """The person behind a request."""

    user_id: int
    username: str
    display_name: str
    role: Role
    site_ids: frozenset[str]

    @property
    def scope(self) -> Scope:
        """Site managers and tenants: their granted sites; analysts and admins: everywhere."""
        return Scope.sites(self.site_ids) if self.role in SCOPED_ROLES else Scope.everywhere()

    @classmethod
    def of(cls, record: store.UserRecord) -> User:
        return cls(
            user_id=record.user_id,
            username=record.username,
            display_name=record.display_name,
            role=record.role,
            site_ids=record.site_ids,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthSettings:
    """Session and throttling limits (from the ``[web_listener]`` config section)."""

    session_idle_s: float = 1800.0
    session_max_s: float = 43200.0
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_s: float = 900.0
    login_lock_s: float = 900.0


class LoginLocked(HubError):
    """Too many failed logins for this username or address; try again later."""

    status = 429
    code = "login_locked"


USER: web.RequestKey[User] = web.RequestKey("suishen_user", User)
CSRF: web.RequestKey[str] = web.RequestKey("suishen_csrf", str)
AUTH_SETTINGS: web.AppKey[AuthSettings] = web.AppKey("auth_settings", AuthSettings)
PASSWORD_HASHER: web.AppKey[PasswordHasher] = web.AppKey("password_hasher", PasswordHasher)

H = TypeVar("H", bound=Callable[..., Any])


def public(handler: H) -> H:
    """Mark a route handler as reachable without a user."""
    setattr(handler, _PUBLIC, True)
    return handler


def current_user(request: web.Request) -> User:
    """The request's user (set by ``auth_middleware``); Unauthorized when there is none."""
    user: User | None = request.get(USER)
    if user is None:
        raise Unauthorized("log in first")
    return user


def require_role(user: User, *roles: Role) -> User:
    """``user`` when their role is one of ``roles``; else Forbidden."""
    if user.role not in roles:
        raise Forbidden("your role may not do this", role=user.role.value)
    return user


def csrf_token(request: web.Request) -> str:
    """The CSRF token forms of this request's session carry ('' without a session)."""
    token: str = request.get(CSRF, "")
    return token


# --------------------------------------------------------------------------- origin and CSRF


def _same_origin(request: web.Request, value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    if not url.is_absolute():
        return False
    return (url.scheme, url.host, url.explicit_port or url.port) == (
        request.scheme,
        request.url.host,
        request.url.explicit_port or request.url.port,
    )


def check_origin(request: web.Request, *, required: bool) -> None:
    """Forbidden unless the request's Origin (else Referer) is this listener's own origin;
    with ``required`` False a request carrying neither passes."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        origin = request.headers.get("Referer")
    if origin is None:
        if required:
            raise Forbidden("the request has no Origin", check="origin")
        return
    if not _same_origin(request, origin):
        raise Forbidden("the request comes from another origin", check="origin")


async def _sent_csrf(request: web.Request) -> str | None:
    header = request.headers.getall(CSRF_HEADER, [])
    if header:
        return header[0] if len(header) == 1 else None
    if request.content_type not in FORM_TYPES:
        return None
    form = await request.post()
    values = form.getall(CSRF_FIELD, [])
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


async def check_csrf(request: web.Request, secret: str) -> None:
    """Forbidden unless the request carries ``secret`` as its CSRF token."""
    sent = await _sent_csrf(request)
    if sent is None or not hmac.compare_digest(sent.encode(), secret.encode()):
        raise Forbidden("missing or wrong CSRF token", check="csrf")


# --------------------------------------------------------------------------- identification


def _is_public(request: web.Request) -> bool:
    match = request.match_info
    if match.http_exception is not None:  # no such route: aiohttp answers 404/405
        return True
    if isinstance(match.route.resource, web.StaticResource):
        return True
    return bool(getattr(match.handler, _PUBLIC, False))


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def _login_redirect(request: web.Request) -> web.HTTPException:
    target = request.rel_url.path_qs
    return web.HTTPSeeOther(URL("/login").with_query(next=target))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the user of every request (see the module docstring)."""
    if _is_public(request):
        if request.method in UNSAFE_METHODS:
            check_origin(request, required=False)
        return await handler(request)
    pool = request.app[DB_POOL]
    settings = request.app[AUTH_SETTINGS]
    bearer = _bearer(request)
    if bearer is not None:
        if len(bearer) > MAX_TOKEN_CHARS:
            raise Unauthorized("unknown or expired token")
        async with pool.acquire() as con:
            record = await store.read_token(con, bearer)
        if record is None:
            raise Unauthorized("unknown or expired token")
        request[USER] = User.of(record)
        return await handler(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = None
    if cookie and len(cookie) <= MAX_TOKEN_CHARS:
        async with pool.acquire() as con:
            session = await store.read_session(con, cookie, idle_s=settings.session_idle_s)
    if session is None:
        if request.method in ("GET", "HEAD") and not request.path.startswith("/api/"):
            raise _login_redirect(request)
        raise Unauthorized("log in first")
    if request.method in UNSAFE_METHODS:
        check_origin(request, required=True)
        await check_csrf(request, session.csrf_secret)
    request[USER] = User.of(session.user)
    request[CSRF] = session.csrf_secret
    return await handler(request)


# --------------------------------------------------------------------------- login, logout


async def log_in(
    pool: asyncpg.Pool,
    settings: AuthSettings,
    *,
    username: str,
    password: str,
    client: str,
    hasher: PasswordHasher = store.DEFAULT_HASHER,
) -> tuple[User, str, str]:
    """Check a login; (user, session token, CSRF secret) of a new session.

    Raises LoginLocked while the username or the address is locked (the password is not
    checked), Unauthorized for a wrong username or password (counted against both)."""
    user_key, addr_key = f"user:{username[:64]}", f"addr:{client}"
    async with pool.acquire() as con:
        locked = await store.throttle_state(con, [user_key, addr_key])
        if locked:
            log.warning("login_locked", username=username[:64], client=client)
            raise LoginLocked("too many failed logins; try again later")
        record = await store.authenticate(con, username, password, hasher=hasher)
        if record is None:
            limits = (
                (user_key, settings.login_max_failures),
                (addr_key, settings.login_max_failures_per_address),
            )
            for key, limit in limits:
                state = await store.record_failure(
                    con,
                    key,
                    limit=limit,
                    window_s=settings.login_window_s,
                    lock_s=settings.login_lock_s,
                )
                if state.locked_until is not None and state.locked_until > _now():
                    log.warning("login_locked", username=username[:64], client=client, key=key)
            log.info("login_failed", username=username[:64], client=client)
            raise Unauthorized("wrong username or password")
        await store.clear_failures(con, user_key)
        token, csrf = await store.create_session(
            con, record.user_id, lifetime_s=settings.session_max_s, client=client
        )
    log.info("login", username=record.username, role=record.role.value, client=client)
    return User.of(record), token, csrf


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, token: str, max_age_s: float
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(max_age_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


async def log_out(request: web.Request, response: web.StreamResponse) -> None:
    """End the request's session (server side) and clear its cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and len(cookie) <= MAX_TOKEN_CHARS:
        async with request.app[DB_POOL].acquire() as con:
            await store.end_session(con, cookie)
    response.del_cookie(SESSION_COOKIE, path="/")
