"""Login, logout, the language switch and the front page (web/app.py VIEW_MODULES)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.errors import BadRequest, HubError, Unauthorized
from suishen.central.web import i18n
from suishen.protocol.vocabulary import Role

HOME = "/site"
TENANT_HOME = "/visitors"  # a tenant sees its invitations, never the site's pages
MAX_FIELD_CHARS = 1024


def home_for(user: auth.User) -> str:
    """Where a user lands after login or on "/": a tenant on its visitors, others on sites."""
    return TENANT_HOME if user.role is Role.TENANT else HOME


def safe_next(value: str | None) -> str:
    """A local path to go to after login or a language switch (never another host)."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return HOME
    if "\\" in value or any(ord(c) < 0x20 for c in value):
        return HOME
    return value


def _one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name, [])
    if len(values) != 1 or len(values[0]) > MAX_FIELD_CHARS:
        raise BadRequest(f"one {name} expected")
    return values[0]


@auth.public
async def login_page(request: web.Request) -> web.StreamResponse:
    context = {"next": safe_next(request.query.get("next")), "error": None}
    return aiohttp_jinja2.render_template("auth/login.html", request, context)


@auth.public
async def login_submit(request: web.Request) -> web.StreamResponse:
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest("a login is a form post")
    posted = await request.post()
    form: dict[str, list[str]] = {}
    for key, value in posted.items():
        if isinstance(value, str):
            form.setdefault(key, []).append(value)
    username, password = _one(form, "username"), _one(form, "password")
    asked = form.get("next", [""])[0]
    target = safe_next(asked)
    try:
        user, token, _csrf = await auth.log_in(
            request.app[DB_POOL],
            request.app[auth.AUTH_SETTINGS],
            username=username,
            password=password,
            client=request.remote or "",
            hasher=request.app[auth.PASSWORD_HASHER],
        )
    except (auth.LoginLocked, Unauthorized) as exc:
        return _login_refused(request, exc, target)
    if not asked or asked == HOME:  # no page asked for: the user's own home
        target = home_for(user)
    response = web.HTTPSeeOther(target)
    auth.set_session_cookie(request, response, token, request.app[auth.AUTH_SETTINGS].session_max_s)
    raise response


def _login_refused(request: web.Request, exc: HubError, target: str) -> web.StreamResponse:
    message = (
        "Too many failed logins; try again later."
        if isinstance(exc, auth.LoginLocked)
        else "Wrong username or password."
    )
    context = {"next": target, "error": message}
    return aiohttp_jinja2.render_template("auth/login.html", request, context, status=exc.status)


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    await auth.log_out(request, response)
    raise response


@auth.public
async def switch_language(request: web.Request) -> web.StreamResponse:
    lang = request.query.get("to", "")
    if lang not in i18n.LANGUAGES:
        raise BadRequest("unknown language")
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    response.set_cookie(
        i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Strict", httponly=True
    )
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(home_for(auth.current_user(request)))


def login_url(next_path: str) -> str:
    return str(URL("/login").with_query(next=next_path))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home, name="home")
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login_submit, name="login_submit")
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_get("/lang", switch_language, name="lang")
