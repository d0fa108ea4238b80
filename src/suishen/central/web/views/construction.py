"""Construction-site pages for site staff: the roster (add, CSV import, expire), today's
attendance, and the muster list of who is on site now by employer and trade (issue 10).

Routes (site managers of the site, admins; analysts may read)::

    GET  /construction                          the construction sites in scope (one: to it)
    GET  /construction/{site_id}                the roster, with the add and import forms
    POST /construction/{site_id}/workers        add a worker (form)
    POST /construction/{site_id}/import         import a roster CSV (multipart: file)
    POST /construction/{site_id}/expire         end a registration (form: person_key)
    GET  /construction/{site_id}/attendance     a day's attendance (?day=YYYY-MM-DD)
    GET  /construction/{site_id}/muster         who is on site now, by employer and trade

A site outside the user's scope is 404 on every route.  Document numbers typed or imported
are turned into person keys with the deployment pepper (``app[PEPPER]``, when the hub has one)
and only their masked forms are kept.  No SQL here: queries/roster.py, store/workers.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.queries import roster as queries
from suishen.central.queries.hotel import local_day
from suishen.central.queries.sitekind import SiteRef, require_site, sites_of_kind
from suishen.central.store import workers
from suishen.central.web.pageparams import (
    PEPPER,
    LocalTime,
    done_message,
    form_fields,
    pepper_of,
    query_day,
    query_int,
)

__all__ = ["PEPPER", "add_routes"]
from suishen.protocol.vocabulary import Role

READERS: Final = (Role.SITE_MANAGER, Role.ADMIN, Role.ANALYST)
WRITERS: Final = (Role.SITE_MANAGER, Role.ADMIN)
FORM_FIELDS: Final = tuple(c for c in workers.COLUMNS)
DONE: Final = {
    "added": "The worker is registered; gateways get the new roster.",
    "expired": "The registration has ended; gateways get the new roster.",
}


def _site_url(site_id: str, tail: str = "") -> str:
    return f"/construction/{quote(site_id, safe='')}{tail}"


async def sites(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    async with request.app[DB_POOL].acquire() as con:
        found = await sites_of_kind(con, user.scope, workers.CONSTRUCTION)
    if len(found) == 1:
        raise web.HTTPSeeOther(_site_url(found[0].site_id))
    context = {"sites": found}
    return aiohttp_jinja2.render_template("construction/list.html", request, context)


async def _roster_page(
    request: web.Request,
    site_id: str,
    *,
    form_error: workers.RosterInputError | None = None,
    form: dict[str, str] | None = None,
    result: workers.ImportResult | None = None,
    status: int = 200,
) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    expired = request.query.get("expired") == "1"
    async with request.app[DB_POOL].acquire() as con:
        site = await require_site(con, user.scope, site_id, workers.CONSTRUCTION)
        rows = await queries.roster(
            con, user.scope, queries.RosterParams(site_id=site_id, include_expired=expired)
        )
    kept = {k: v for k, v in (form or {}).items() if k not in ("id_number", "person_key")}
    context = {
        "site": site,
        "rows": rows,
        "expired": expired,
        "at": LocalTime.of(site.timezone),
        "may_change": user.role in WRITERS,
        "show_keys": user.role in (Role.ANALYST, Role.ADMIN),
        "has_pepper": pepper_of(request) is not None,
        "form_error": form_error,
        "form": kept,  # the document number and key are never echoed back
        "result": result,
        "columns": workers.COLUMNS,
        "done": done_message(request, DONE),
    }
    return aiohttp_jinja2.render_template(
        "construction/roster.html", request, context, status=status
    )


async def roster_page(request: web.Request) -> web.StreamResponse:
    return await _roster_page(request, request.match_info["site_id"])


def _today(site: SiteRef) -> dt.date:
    """Today at the site (for the age check of an ID number and the attendance page)."""
    return local_day(site, dt.datetime.now(dt.UTC))


async def add(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *WRITERS)
    site_id = request.match_info["site_id"]
    fields, _ = await form_fields(request, FORM_FIELDS)
    async with request.app[DB_POOL].acquire() as con:
        site = await require_site(con, user.scope, site_id, workers.CONSTRUCTION)
        try:
            worker = workers.check_worker(fields, pepper=pepper_of(request), today=_today(site))
        except workers.RosterInputError as exc:
            error = exc
        else:
            await workers.add_worker(con, user.scope, site_id, worker, actor=user.username)
            raise web.HTTPSeeOther(_site_url(site_id, "?done=added"))
    return await _roster_page(request, site_id, form_error=error, form=fields, status=400)


async def import_csv(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *WRITERS)
    site_id = request.match_info["site_id"]
    _, files = await form_fields(request, (), files=("file",))
    async with request.app[DB_POOL].acquire() as con:
        site = await require_site(con, user.scope, site_id, workers.CONSTRUCTION)
        result = await workers.import_roster(
            con,
            user.scope,
            site_id,
            files.get("file", b""),
            pepper=pepper_of(request),
            today=_today(site),
            actor=user.username,
        )
    return await _roster_page(request, site_id, result=result)


async def expire(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *WRITERS)
    site_id = request.match_info["site_id"]
    fields, _ = await form_fields(request, ("person_key",))
    async with request.app[DB_POOL].acquire() as con:
        await workers.expire_worker(
            con, user.scope, site_id, fields["person_key"], actor=user.username
        )
    raise web.HTTPSeeOther(_site_url(site_id, "?done=expired"))


async def attendance(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    site_id = request.match_info["site_id"]
    day = query_day(request)
    async with request.app[DB_POOL].acquire() as con:
        site = await require_site(con, user.scope, site_id, workers.CONSTRUCTION)
        rows = await queries.attendance(
            con, user.scope, queries.AttendanceParams(site_id=site_id, day=day)
        )
    shown = day or _today(site)
    context = {
        "site": site,
        "rows": rows,
        "day": shown,
        "previous": shown - dt.timedelta(days=1),
        "next": shown + dt.timedelta(days=1),
        "present": sum(1 for r in rows if r.first_in is not None),
        "at": LocalTime.of(site.timezone),
        "show_keys": user.role in (Role.ANALYST, Role.ADMIN),
    }
    return aiohttp_jinja2.render_template("construction/attendance.html", request, context)


async def muster(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    site_id = request.match_info["site_id"]
    window = query_int(request, "hours", 24)
    async with request.app[DB_POOL].acquire() as con:
        site = await require_site(con, user.scope, site_id, workers.CONSTRUCTION)
        rows = await queries.muster(
            con, user.scope, queries.MusterParams(site_id=site_id, window_hours=window)
        )
    context = {
        "site": site,
        "rows": rows,
        "groups": queries.muster_groups(rows),
        "hours": window,
        "at": LocalTime.of(site.timezone),
        "show_keys": user.role in (Role.ANALYST, Role.ADMIN),
    }
    return aiohttp_jinja2.render_template("construction/muster.html", request, context)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/construction", sites, name="construction_list")
    app.router.add_get("/construction/{site_id}", roster_page, name="construction_roster")
    app.router.add_post("/construction/{site_id}/workers", add, name="construction_add")
    app.router.add_post("/construction/{site_id}/import", import_csv, name="construction_import")
    app.router.add_post("/construction/{site_id}/expire", expire, name="construction_expire")
    app.router.add_get(
        "/construction/{site_id}/attendance", attendance, name="construction_attendance"
    )
    app.router.add_get("/construction/{site_id}/muster", muster, name="construction_muster")
