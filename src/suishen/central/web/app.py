"""The web listener's application: pages for people, one module per area (DESIGN §7, §9.16).

``web_app(pool=..., config=...)`` builds it:

- middlewares, outermost first: ``web_error_middleware`` (a HubError becomes an HTML error
  page, or JSON under /api/), ``auth.auth_middleware`` (who is asking; CSRF and Origin checks),
  aiohttp-jinja2's context processors (``base_context``: lang, user, csrf_token, nav);
- every response, static files and errors included, gets the security headers of
  ``SECURITY_HEADERS`` (a strict Content-Security-Policy: no inline script or style, nothing
  from another origin) and ``Cache-Control: no-store`` unless it is a static file;
- templates (jinja2, autoescaped) under web/templates/, ``{% extends "base.html" %}``; the
  global ``_`` translates (web/i18n.py); ``static("x.js")`` is a static file's URL;
- each module of ``VIEW_MODULES`` adds its routes with ``add_routes(app)``; background work
  is a cleanup_ctx in ``CONTEXTS`` (each entry ``async def ctx(app): ...; yield; ...``);
- the database pool at ``app[DB_POOL]``: the caller's ``pool`` (not closed here), or, when
  None, the database the config names (opened and closed with the app).

Other branches add one line to ``VIEW_MODULES`` (and ``CONTEXTS``, ``NAV``) each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import asyncpg
import jinja2
import structlog
from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning

from suishen.central import auth
from suishen.central.config import HubConfig, WebListenerSection
from suishen.central.db import DB_POOL, database_ctx
from suishen.central.errors import HubError, error_response
from suishen.central.metrics import HUB_METRICS, HubMetrics
from suishen.central.store.users import DEFAULT_HASHER, purge_expired
from suishen.central.web import feed, i18n
from suishen.protocol.vocabulary import Role

# aiohttp-jinja2 keeps its per-request context under a string request key; only its warning.
warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="aiohttp_jinja2")

log = structlog.get_logger("suishen.central.web")

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
MAX_BODY_BYTES = 4 * 1024 * 1024  # forms and CSV imports

VIEW_MODULES: tuple[str, ...] = (
    "suishen.central.web.auth_views",
    "suishen.central.web.site_views",
    "suishen.central.web.views.alerts",
    "suishen.central.web.views.ops",
    "suishen.central.analyst_api",
)

CONTEXTS: tuple[Callable[[web.Application], AsyncIterator[None]], ...] = (feed.feed_ctx,)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NavItem:
    """A link in the top bar of every page, shown to the roles listed."""

    label: str  # msgid
    href: str
    roles: frozenset[Role]


ALL_ROLES = frozenset(Role)
NAV: tuple[NavItem, ...] = (
    NavItem(label="Sites", href="/site", roles=frozenset(ALL_ROLES - {Role.TENANT})),
    NavItem(label="Alerts", href="/alerts", roles=frozenset(ALL_ROLES - {Role.TENANT})),
)

# sitepages: the hotel and construction pages (site staff), the analyst pages
VIEW_MODULES += (
    "suishen.central.web.views.hotel",
    "suishen.central.web.views.construction",
    "suishen.central.web.views.analyst",
    "suishen.central.web.views.reports",
)
NAV += (
    NavItem(label="Hotel", href="/hotel", roles=frozenset({Role.SITE_MANAGER, Role.ADMIN})),
    NavItem(
        label="Construction", href="/construction", roles=frozenset({Role.SITE_MANAGER, Role.ADMIN})
    ),
    NavItem(label="Analysis", href="/analyst", roles=frozenset({Role.ANALYST, Role.ADMIN})),
)
# visitors: the tenant pages (invitations and arrivals)
VIEW_MODULES += ("suishen.central.web.views.tenant",)
NAV += (
    NavItem(
        label="Visitors",
        href="/visitors",
        roles=frozenset({Role.TENANT, Role.SITE_MANAGER, Role.ADMIN}),
    ),
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

HOUSEKEEPING_S = 3600.0


async def housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: drop expired sessions and stale login-throttle rows, at start and hourly."""

    async def purge() -> None:
        while True:
            try:
                async with app[DB_POOL].acquire() as con:
                    sessions, throttles = await purge_expired(con)
                log.info("web_housekeeping", sessions=sessions, throttles=throttles)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("web_housekeeping_failed", error=type(exc).__name__)
            await asyncio.sleep(HOUSEKEEPING_S)

    task = asyncio.create_task(purge(), name="web-housekeeping")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


WEB_SETTINGS: web.AppKey[WebListenerSection] = web.AppKey("web_settings", WebListenerSection)
HUB_CONFIG: web.AppKey[HubConfig] = web.AppKey("hub_config", HubConfig)  # the whole config


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


async def base_context(request: web.Request) -> dict[str, Any]:
    """What every template gets: lang, user (or None), csrf_token, nav, path."""
    user = request.get(auth.USER)
    nav = [item for item in NAV if user is not None and user.role in item.roles]
    return {
        "lang": i18n.request_language(request),
        "user": user,
        "csrf_token": auth.csrf_token(request),
        "nav": nav,
        "path": request.path,
    }


def render_error(request: web.Request, status: int, message: str) -> web.Response:
    context: dict[str, Any] = {
        "lang": i18n.request_language(request),
        "user": request.get(auth.USER),
        "csrf_token": auth.csrf_token(request),
        "nav": [],
        "path": request.path,
        "status": status,
        "message": message,
    }
    return aiohttp_jinja2.render_template("error.html", request, context, status=status)


Handler = Callable[[web.Request], Any]


@web.middleware
async def web_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HubError -> its status: JSON under /api/, else an HTML page; anything else -> 500."""
    try:
        response: web.StreamResponse = await handler(request)
    except HubError as exc:
        level = log.error if exc.status >= 500 else log.info
        level("request_refused", path=request.path, status=exc.status, error=str(exc))
        if request.path.startswith("/api/"):
            return error_response(exc)
        message = str(exc) if exc.status < 500 else "internal error"
        return render_error(request, exc.status, message)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("request_failed", path=request.path)
        if request.path.startswith("/api/"):
            return error_response(HubError("internal error"))
        return render_error(request, 500, "internal error")
    return response


def _gettext(context: jinja2.runtime.Context, msgid: str, /, **values: Any) -> str:
    return i18n.translate(context.get("lang", i18n.DEFAULT_LANGUAGE), msgid, **values)


def _static(path: str) -> str:
    return "/static/" + path


def _localtime(value: dt.datetime | None, zone: dt.tzinfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored instant as local wall time of ``zone`` ('' for None)."""
    return "" if value is None else value.astimezone(zone).strftime(fmt)


def _age(value: dt.datetime | None, now: dt.datetime) -> str:
    """How long ago, compactly: 42s, 5m, 3h, 2d ('-' for None)."""
    if value is None:
        return "-"
    seconds = max(0, int((now - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def setup_templates(app: web.Application) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        context_processors=[base_context],
        undefined=jinja2.ChainableUndefined,
    )
    env.globals["_"] = jinja2.pass_context(_gettext)
    env.globals["static"] = _static
    env.filters["localtime"] = _localtime
    env.filters["age"] = _age
    return env


def _pool_ctx(pool: asyncpg.Pool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[DB_POOL] = pool
        yield

    return ctx


def auth_settings(section: WebListenerSection) -> auth.AuthSettings:
    return auth.AuthSettings(
        session_idle_s=section.session_idle_s,
        session_max_s=section.session_max_s,
        login_max_failures=section.login_max_failures,
        login_max_failures_per_address=section.login_max_failures_per_address,
        login_window_s=section.login_window_s,
        login_lock_s=section.login_lock_s,
    )


def web_app(
    *, pool: asyncpg.Pool | None, config: HubConfig, metrics: HubMetrics | None = None
) -> web.Application:
    """The web UI's application (see the module docstring); ``metrics``: the hub's, served at
    /metrics (a fresh set when the web app runs alone, as in tests)."""
    app = web.Application(
        middlewares=[web_error_middleware, auth.auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    setup_templates(app)  # appends aiohttp-jinja2's context processors middleware (innermost)
    app[WEB_SETTINGS] = config.web_listener
    app[HUB_CONFIG] = config
    app[auth.AUTH_SETTINGS] = auth_settings(config.web_listener)
    app[auth.PASSWORD_HASHER] = DEFAULT_HASHER
    app[HUB_METRICS] = metrics if metrics is not None else HubMetrics()
    if pool is not None:
        app.cleanup_ctx.append(_pool_ctx(pool))
    else:
        from suishen.central.app import database_settings  # noqa: PLC0415 - app imports us

        app.cleanup_ctx.append(database_ctx(database_settings(config)))
    app.cleanup_ctx.extend(CONTEXTS)
    app[feed.MAX_STREAMS] = config.web_listener.live_feed_max_streams
    app.on_shutdown.append(feed.close_streams)  # before aiohttp waits for open streams
    app.on_response_prepare.append(_security_headers)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    for name in VIEW_MODULES:
        importlib.import_module(name).add_routes(app)
    return app
