"""Hotel pages for site staff: guests in house by room, today's check-ins, minors without a
guardian, and the foreign-guest registration list with its "reported" action (issue 10).

Routes (site managers of the hotel, admins; analysts may read)::

    GET  /hotel                       the hotels in the user's scope (one: straight to it)
    GET  /hotel/{site_id}             the hotel's page
    POST /hotel/{site_id}/reported    mark a foreign guest's stay reported (form: stay)
    POST /hotel/{site_id}/room        record a stay's room (form: stay, room)

A hotel outside the user's scope is 404 on every route, like an unknown one.  The pages hold
no SQL: central/queries/hotel.py and central/store/hotel_reports.py.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.queries import hotel
from suishen.central.queries.sitekind import require_site, sites_of_kind
from suishen.central.store.hotel_reports import mark_reported, set_room
from suishen.central.web.pageparams import LocalTime, done_message, form_fields, query_int
from suishen.protocol.vocabulary import Role

READERS: Final = (Role.SITE_MANAGER, Role.ADMIN, Role.ANALYST)
WRITERS: Final = (Role.SITE_MANAGER, Role.ADMIN)
DONE: Final = {
    "reported": "Marked as reported.",
    "already": "That stay was already reported.",
    "room": "The room is recorded.",
}


async def hotels(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    async with request.app[DB_POOL].acquire() as con:
        sites = await sites_of_kind(con, user.scope, hotel.HOTEL)
    if len(sites) == 1:
        raise web.HTTPSeeOther(f"/hotel/{quote(sites[0].site_id, safe='')}")
    context = {"sites": sites, "area": "hotel", "title": "Hotels"}
    return aiohttp_jinja2.render_template("hotel/list.html", request, context)


async def hotel_page(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *READERS)
    site_id = request.match_info["site_id"]
    days = query_int(request, "days", 7)
    scope = user.scope
    async with request.app[DB_POOL].acquire() as con:
        site = await require_site(con, scope, site_id, hotel.HOTEL)
        in_house = await hotel.stays_now(con, scope, hotel.HotelParams(site_id=site_id))
        checkins = await hotel.checkins_today(con, scope, hotel.CheckinsParams(site_id=site_id))
        foreign = await hotel.foreign_guests(
            con, scope, hotel.ForeignGuestParams(site_id=site_id, days=days)
        )
    rooms: dict[str, list[hotel.StayRow]] = {}
    for stay in in_house:
        rooms.setdefault(stay.room or "", []).append(stay)
    context = {
        "site": site,
        "rooms": rooms,
        "in_house": in_house,
        "minors": [s for s in in_house if s.unaccompanied_minor],
        "checkins": checkins,
        "foreign": foreign,
        "days": days,
        "at": LocalTime.of(site.timezone),
        "may_report": user.role in WRITERS,
        "show_keys": user.role in (Role.ANALYST, Role.ADMIN),
        "done": done_message(request, DONE),
    }
    return aiohttp_jinja2.render_template("hotel/site.html", request, context)


async def reported(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *WRITERS)
    site_id = request.match_info["site_id"]
    fields, _ = await form_fields(request, ("stay",))
    key = hotel.StayKey.parse(fields["stay"])
    async with request.app[DB_POOL].acquire() as con:
        outcome = await mark_reported(con, user.scope, site_id, key, actor=user.username)
    done = "reported" if outcome.changed else "already"
    raise web.HTTPSeeOther(f"/hotel/{quote(site_id, safe='')}?done={done}#foreign")


async def room(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), *WRITERS)
    site_id = request.match_info["site_id"]
    fields, _ = await form_fields(request, ("stay", "room"))
    key = hotel.StayKey.parse(fields["stay"])
    async with request.app[DB_POOL].acquire() as con:
        await set_room(con, user.scope, site_id, key, fields["room"], actor=user.username)
    raise web.HTTPSeeOther(f"/hotel/{quote(site_id, safe='')}?done=room#rooms")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/hotel", hotels, name="hotel_list")
    app.router.add_get("/hotel/{site_id}", hotel_page, name="hotel_site")
    app.router.add_post("/hotel/{site_id}/reported", reported, name="hotel_reported")
    app.router.add_post("/hotel/{site_id}/room", room, name="hotel_room")
