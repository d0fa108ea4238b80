"""Tenant pages: a company in a building invites its visitors and sees their arrivals (issue 13).

Routes (tenants of the site, site managers of the site, admins)::

    GET  /visitors                          the sites in scope (one: to it)
    GET  /visitors/{site_id}                my invitations (?all=1: also cancelled and ended),
                                            the invite form
    POST /visitors/{site_id}/invite         invite a visitor (form, CSRF)
    POST /visitors/{site_id}/cancel         cancel an invitation (form: invitation_id)
    GET  /visitors/{site_id}/arrivals       my visitors' scans inside their windows

A tenant sees and cancels only its own invitations; a site manager of the site and an admin
see all of the site's.  A site outside the user's scope, or another tenant's invitation, is 404
(never confirmed).  The document number typed in becomes the person key with the deployment
pepper and goes no further (never echoed back); times typed in are the site's local time.
No SQL here: central/store/invitations.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.errors import NotFound
from suishen.central.queries.sitekind import zone_of
from suishen.central.store import invitations as inv
from suishen.central.store.watchlist import Document
from suishen.central.web.pageparams import LocalTime, done_message, form_fields, pepper_of
from suishen.protocol.vocabulary import Role

ROLES: Final = (Role.TENANT, Role.SITE_MANAGER, Role.ADMIN)
FORM_FIELDS: Final = (
    "id_type", "id_number", "nationality", "person_key", "name", "valid_from", "valid_until",
    "lanes", "zones", "tenant",
)  # fmt: skip
DONE: Final = {
    "invited": "The visitor is invited; the site's gateways get the new list.",
    "cancelled": "The invitation is cancelled; the site's gateways get the new list.",
}
LOCAL_FORMAT: Final = "%Y-%m-%dT%H:%M"


def _site_url(site_id: str, tail: str = "") -> str:
    return f"/visitors/{quote(site_id, safe='')}{tail}"


def _limits(request: web.Request) -> inv.VisitorLimits:
    from suishen.central.web.app import HUB_CONFIG  # noqa: PLC0415 - the app imports views

    config = request.app.get(HUB_CONFIG)
    return inv.VisitorLimits() if config is None else config.visitors.limits()


async def sites(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *ROLES)
    async with request.app[DB_POOL].acquire() as con:
        found = await inv.sites_for(con, user)
    if len(found) == 1:
        raise web.HTTPSeeOther(_site_url(found[0].site_id))
    return aiohttp_jinja2.render_template("tenant/list.html", request, {"sites": found})


async def _page(
    request: web.Request,
    site_id: str,
    *,
    form_error: inv.InvitationInputError | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *ROLES)
    show_all = request.query.get("all") == "1"
    async with request.app[DB_POOL].acquire() as con:
        site = await inv.site_choice(con, user, site_id)
        rows = await inv.list_invitations(con, user, site_id, include_past=show_all)
    now = dt.datetime.now(dt.UTC)
    zone = zone_of(site.timezone)
    kept = {k: v for k, v in (form or {}).items() if k not in ("id_number", "person_key")}
    defaults = {
        "valid_from": now.astimezone(zone).strftime(LOCAL_FORMAT),
        "valid_until": (now + dt.timedelta(hours=8)).astimezone(zone).strftime(LOCAL_FORMAT),
    }
    context = {
        "site": site,
        "rows": [(r, r.state(now)) for r in rows],
        "show_all": show_all,
        "at": LocalTime.of(site.timezone),
        "for_tenant": user.role is not Role.TENANT,
        "has_pepper": pepper_of(request) is not None,
        "form_error": form_error,
        "form": {**defaults, **kept},  # the document number and key are never echoed back
        "limits": _limits(request),
        "done": done_message(request, DONE),
    }
    return aiohttp_jinja2.render_template(
        "tenant/invitations.html", request, context, status=status
    )


async def invitations_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, request.match_info["site_id"])


def _local_time(text: str, zone: dt.tzinfo, field: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise inv.InvitationInputError(field, "a time is YYYY-MM-DD HH:MM") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _request(site_id: str, fields: dict[str, str], zone: dt.tzinfo) -> inv.InviteRequest:
    """The invitation a posted form asks for (InvitationInputError naming a bad field)."""
    key = fields["person_key"].strip() or None
    document = None
    if key is None:
        document = Document(
            idt=fields["id_type"] or "RIC",
            idn=fields["id_number"],
            nat=fields["nationality"].strip() or None,
        )
    return inv.InviteRequest(
        site_id=site_id,
        valid_from=_local_time(fields["valid_from"], zone, "valid_from"),
        valid_until=_local_time(fields["valid_until"], zone, "valid_until"),
        document=document,
        person_key=key,
        name=fields["name"],
        lanes=inv.split_places(fields["lanes"]),
        zones=inv.split_places(fields["zones"]),
        tenant=fields["tenant"].strip() or None,
    )


async def invite(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *ROLES)
    site_id = request.match_info["site_id"]
    fields, _ = await form_fields(request, FORM_FIELDS)
    async with request.app[DB_POOL].acquire() as con:
        site = await inv.site_choice(con, user, site_id)
        try:
            wanted = _request(site_id, fields, zone_of(site.timezone))
            await inv.invite(
                con, user, wanted, pepper=pepper_of(request), now=dt.datetime.now(dt.UTC),
                limits=_limits(request),
            )  # fmt: skip
        except inv.InvitationInputError as exc:
            error = exc
        else:
            raise web.HTTPSeeOther(_site_url(site_id, "?done=invited"))
    return await _page(request, site_id, form_error=error, form=fields, status=400)


async def cancel(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *ROLES)
    site_id = request.match_info["site_id"]
    fields, _ = await form_fields(request, ("invitation_id",))
    text = fields["invitation_id"].strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise inv.InvitationInputError("invitation_id", "not an invitation number")
    async with request.app[DB_POOL].acquire() as con:
        await inv.site_choice(con, user, site_id)
        found = await inv.get(con, user, int(text))
        if found.site_id != site_id:
            raise NotFound("no such invitation")
        await inv.cancel(con, user, found.invitation_id)
    raise web.HTTPSeeOther(_site_url(site_id, "?done=cancelled"))


async def arrivals(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *ROLES)
    site_id = request.match_info["site_id"]
    async with request.app[DB_POOL].acquire() as con:
        site = await inv.site_choice(con, user, site_id)
        rows = await inv.arrivals(con, user, site_id)
    context = {"site": site, "rows": rows, "at": LocalTime.of(site.timezone)}
    return aiohttp_jinja2.render_template("tenant/arrivals.html", request, context)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/visitors", sites, name="visitors_list")
    app.router.add_get("/visitors/{site_id}", invitations_page, name="visitors_invitations")
    app.router.add_post("/visitors/{site_id}/invite", invite, name="visitors_invite")
    app.router.add_post("/visitors/{site_id}/cancel", cancel, name="visitors_cancel")
    app.router.add_get("/visitors/{site_id}/arrivals", arrivals, name="visitors_arrivals")
