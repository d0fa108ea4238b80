"""The alerts inbox, an alert's page with its loop actions, and the platforms' signed callback
(web/app.py VIEW_MODULES).

- ``GET /alerts``: the inbox (filters: state or "open", route, overdue, site; keyset pages);
- ``GET /alerts/{alert_id}``: the alert, its deadlines, its full timeline (who, when, note),
  its webhook deliveries, and a form per action the loop allows now;
- ``POST /alerts/{alert_id}/{action}``: take the step (form: ``note``; a dispatch also names
  ``route``); CSRF and Origin checked by the auth middleware; then back to the alert's page;
- ``POST /hooks/alerts/{alert_id}``: public (no session): the platform's callback, verified by
  its signature (central/alerts/callback.py); answers JSON, errors too.

Site managers see and act on their sites' alerts only: another site's alert is 404 on every
route, as if it did not exist. Analysts read every alert; admins read and act on every alert;
tenants have no alert pages (403). Holds no SQL: central/queries/alerts.py and
central/alerts/loop.py do the work.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp_jinja2
import structlog
from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from suishen.central import auth
from suishen.central.alerts import callback
from suishen.central.alerts.loop import MAX_NOTE, advance
from suishen.central.db import DB_POOL
from suishen.central.errors import BadRequest, HubError, NotFound, error_response
from suishen.central.queries.alerts import InboxParams, alert_detail, inbox
from suishen.protocol.alert_loop import AlertAction
from suishen.protocol.vocabulary import AlertRoute, AlertStep, Role

__all__ = ["add_routes"]

log = structlog.get_logger("suishen.central.web.alerts")

READERS: Final = (Role.SITE_MANAGER, Role.ANALYST, Role.ADMIN)
ACTORS: Final = (Role.SITE_MANAGER, Role.ADMIN)
MAX_PARAM: Final = 64
FILTERS: Final = ("state", "route", "overdue", "site", "before")


def _one(values: MultiMapping[Any], name: str, limit: int = MAX_PARAM) -> str | None:
    """The single value of a parameter (absent or empty: None); repeated or overlong: 400."""
    found = values.getall(name, [])
    if not found:
        return None
    if len(found) > 1:
        raise BadRequest(f"{name} given more than once", field=name)
    value = found[0]
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{name} is too long", field=name)
    return value or None


def _alert_id(request: web.Request) -> int:
    text = request.match_info["alert_id"]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFound("no such alert")
    return int(text)


def inbox_params(query: MultiMapping[str]) -> InboxParams:
    """The inbox filters from a query string (400 on anything malformed)."""
    state = _one(query, "state")
    overdue = _one(query, "overdue")
    before = _one(query, "before")
    if overdue not in (None, "yes", "no"):
        raise BadRequest("overdue is yes or no", field="overdue")
    if before is not None and not (before.isascii() and before.isdigit() and len(before) <= 18):
        raise BadRequest("before is an alert id", field="before")
    return InboxParams(
        state=None if state == "open" else state,
        open_only=state == "open",
        route=_one(query, "route"),
        overdue=None if overdue is None else overdue == "yes",
        site_id=_one(query, "site"),
        before_id=None if before is None else int(before),
    )


async def inbox_page(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    params = inbox_params(request.query)
    async with request.app[DB_POOL].acquire() as con:
        page = await inbox(con, user.scope, params)
    kept = {k: v for k in FILTERS if k != "before" and (v := request.query.get(k))}
    next_url = None
    if page.next_before is not None:
        next_url = str(URL("/alerts").with_query({**kept, "before": str(page.next_before)}))
    context = {
        "page": page,
        "filters": kept,
        "next_url": next_url,
        "paged": params.before_id is not None,
        "states": [s.value for s in AlertStep],
        "routes": [r.value for r in AlertRoute],
        "sites": sorted(user.site_ids) if not user.scope.is_everywhere else None,
    }
    return aiohttp_jinja2.render_template("alerts/inbox.html", request, context)


async def alert_page(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    alert_id = _alert_id(request)
    async with request.app[DB_POOL].acquire() as con:
        detail = await alert_detail(con, user.scope, alert_id)
    context = {
        "detail": detail,
        "alert": detail.alert,
        "may_act": user.role in ACTORS,
        "routes": [r.value for r in AlertRoute],
    }
    return aiohttp_jinja2.render_template("alerts/detail.html", request, context)


async def alert_action(request: web.Request) -> web.StreamResponse:
    user = auth.current_user(request)
    alert_id = _alert_id(request)
    # Out of scope first (404 whatever the role), then the role.
    async with request.app[DB_POOL].acquire() as con:
        await alert_detail(con, user.scope, alert_id)
    auth.require_role(user, *ACTORS)
    try:
        action = AlertAction(request.match_info["action"])
    except ValueError:
        raise NotFound("no such action") from None
    if request.content_type not in auth.FORM_TYPES:
        raise BadRequest("an alert step is a form post")
    form = await request.post()
    note = _one(form, "note", MAX_NOTE) or ""
    route = _one(form, "route") if action is AlertAction.DISPATCH else None
    if action is not AlertAction.DISPATCH and "route" in form:
        raise BadRequest("only a dispatch names a route", field="route")
    async with request.app[DB_POOL].acquire() as con:
        await advance(con, user.scope, alert_id, action, user, note, route=route)
    raise web.HTTPSeeOther(f"/alerts/{alert_id}")


@auth.public
async def alert_callback(request: web.Request) -> web.StreamResponse:
    """The platform's signed callback; its errors are JSON (a platform, not a browser)."""
    try:
        return await callback.callback(request)
    except HubError as exc:
        log.info("alert_callback_refused", status=exc.status, error=str(exc))
        return error_response(exc)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/alerts", inbox_page, name="alerts")
    app.router.add_get("/alerts/{alert_id}", alert_page, name="alert")
    app.router.add_post("/alerts/{alert_id}/{action}", alert_action, name="alert_action")
    app.router.add_post(callback.CALLBACK_PATH, alert_callback, name="alert_callback")
