"""Site pages: the site picker, the dashboard, its live feed (SSE), the scan log and its CSV.

Routes (every one needs a user; a site outside the user's scope is 404 like a missing one):

    GET /site                       the sites in scope (straight to the one when only one)
    GET /site/{site_id}             dashboard: inside now, entries by hour, capacity, health
    GET /site/{site_id}/feed        live feed of scans (text/event-stream, event "scan")
    GET /site/{site_id}/scans       scan log: filters, keyset pages of 50
    GET /site/{site_id}/scans.csv   the filtered rows as CSV (UTF-8 with BOM, streamed)

Query parameters are validated here (one value each, bounded length, known vocabulary) and
become the frozen params of central/queries/site.py; this module holds no SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import urllib.parse
import zoneinfo
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_sse import sse_response

from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.errors import BadRequest, NotFound
from suishen.central.queries import site as queries
from suishen.central.store import audit
from suishen.central.web import feed, i18n
from suishen.protocol.reasons import Reason
from suishen.protocol.vocabulary import Verdict

MAX_PARAM_CHARS = 64
MAX_RANGE = dt.timedelta(days=31)
RECENT_ROWS = 20
CSV_CHUNK_ROWS = 500
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHART_W, CHART_H, CHART_BAR_H = 480, 170, 130
FEED_CHECK_S = 5.0


# --------------------------------------------------------------------------- parameters


def query_one(request: web.Request, name: str, *, max_chars: int = MAX_PARAM_CHARS) -> str | None:
    """The one value of query parameter ``name`` ('' counts as absent); BadRequest when it is
    repeated or longer than ``max_chars``."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"one {name} at most", field=name)
    if not values or values[0] == "":
        return None
    if len(values[0]) > max_chars:
        raise BadRequest(f"{name} is too long", field=name)
    return values[0]


def _site_id(request: web.Request) -> str:
    site_id = request.match_info["site_id"]
    if not 1 <= len(site_id) <= MAX_PARAM_CHARS:
        raise NotFound("no such site")
    return site_id


async def _site(request: web.Request) -> tuple[auth.User, queries.SiteInfo]:
    user = auth.current_user(request)
    async with request.app[DB_POOL].acquire() as con:
        site = await queries.site_info(
            con, user.scope, queries.SiteParams(site_id=_site_id(request))
        )
    return user, site


def _zone(site: queries.SiteInfo) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(site.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("Asia/Shanghai")


def _day(site: queries.SiteInfo, now: dt.datetime) -> queries.DayParams:
    local = now.astimezone(_zone(site))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return queries.DayParams(site_id=site.site_id, start=start, end=start + dt.timedelta(days=1))


def _local_time(
    request_value: str | None, name: str, zone: zoneinfo.ZoneInfo
) -> dt.datetime | None:
    if request_value is None:
        return None
    try:
        value = dt.datetime.fromisoformat(request_value)
    except ValueError as exc:
        raise BadRequest(f"{name} is not a date and time", field=name) from exc
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def log_params(
    request: web.Request, site: queries.SiteInfo, now: dt.datetime
) -> queries.ScanLogParams:
    """The scan-log filters of the request's query string (BadRequest for any bad one)."""
    zone = _zone(site)
    since = _local_time(query_one(request, "since"), "since", zone)
    until = _local_time(query_one(request, "until"), "until", zone)
    if since is None:
        since = _day(site, now).start
    if until is None:
        until = now + dt.timedelta(minutes=1)
    if not since < until or until - since > MAX_RANGE:
        raise BadRequest("since must be before until, at most 31 days apart", field="since")
    verdict = query_one(request, "verdict")
    if verdict is not None and verdict not in {v.value for v in Verdict}:
        raise BadRequest("unknown verdict", field="verdict")
    reason = query_one(request, "reason")
    if reason is not None and reason not in {r.value for r in Reason}:
        raise BadRequest("unknown reason", field="reason")
    after = query_one(request, "after", max_chars=400)
    return queries.ScanLogParams(
        site_id=site.site_id,
        since=since,
        until=until,
        lane_id=query_one(request, "lane"),
        verdict=verdict,
        reason=reason,
        masked_number=query_one(request, "number"),
        after=None if after is None else queries.ScanCursor.decode(after),
    )


def _filters_query(params: queries.ScanLogParams, zone: zoneinfo.ZoneInfo) -> str:
    """The filters as a query string (links to the next page and the CSV keep them)."""
    pairs = {
        "since": params.since.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "until": params.until.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "lane": params.lane_id,
        "verdict": params.verdict,
        "reason": params.reason,
        "number": params.masked_number,
    }
    return urllib.parse.urlencode({k: v for k, v in pairs.items() if v})


# --------------------------------------------------------------------------- pages


async def site_picker(request: web.Request) -> web.StreamResponse:
    user = auth.current_user(request)
    async with request.app[DB_POOL].acquire() as con:
        found = await queries.sites(con, user.scope)
    if len(found) == 1:
        raise web.HTTPSeeOther(f"/site/{found[0].site_id}")
    return aiohttp_jinja2.render_template("site/picker.html", request, {"sites": found})


def hour_chart(hours: tuple[queries.HourCount, ...]) -> dict[str, Any]:
    """Geometry of the entries-by-hour bar chart (drawn as inline SVG by the template)."""
    top = max((h.entries for h in hours), default=0) or 1
    step = CHART_W / 24
    bars = []
    for h in hours:
        height = round(CHART_BAR_H * h.entries / top)
        bars.append(
            {
                "x": round(h.hour * step + 2, 1),
                "y": CHART_BAR_H + 10 - height,
                "w": round(step - 4, 1),
                "h": height,
                "hour": h.hour,
                "entries": h.entries,
            }
        )
    return {"width": CHART_W, "height": CHART_H, "base": CHART_BAR_H + 10, "bars": bars, "top": top}


async def dashboard(request: web.Request) -> web.StreamResponse:
    user, site = await _site(request)
    now = dt.datetime.now(dt.UTC)
    day = _day(site, now)
    scope = user.scope
    async with request.app[DB_POOL].acquire() as con:
        inside = await queries.inside_now(con, scope, day)
        hours = await queries.entries_by_hour(con, scope, day, str(_zone(site)))
        health = await queries.gateway_health(con, scope, day)
        lists = await queries.list_ages(con, scope)
        alerts = await queries.open_alerts(con, scope, queries.SiteParams(site_id=site.site_id))
        recent = await queries.scan_log(
            con,
            scope,
            queries.ScanLogParams(
                site_id=site.site_id, since=day.start, until=day.end, limit=RECENT_ROWS
            ),
        )
    zones: dict[str, int] = {}
    for person in inside:
        zones[person.zone] = zones.get(person.zone, 0) + 1
    count = len(inside)
    capacity = (
        "hard"
        if site.capacity_hard and count >= site.capacity_hard
        else "soft"
        if site.capacity_soft and count >= site.capacity_soft
        else "ok"
    )
    context = {
        "site": site,
        "zone": _zone(site),
        "now": now,
        "inside": inside,
        "zones": sorted(zones.items()),
        "inside_count": count,
        "capacity": capacity,
        "chart": hour_chart(hours),
        "entries_today": sum(h.entries for h in hours),
        "health": health,
        "lists": lists,
        "open_alerts": alerts,
        "recent": recent.rows,
    }
    return aiohttp_jinja2.render_template("site/dashboard.html", request, context)


async def scan_log(request: web.Request) -> web.StreamResponse:
    user, site = await _site(request)
    now = dt.datetime.now(dt.UTC)
    params = log_params(request, site, now)
    async with request.app[DB_POOL].acquire() as con:
        page = await queries.scan_log(con, user.scope, params)
    zone = _zone(site)
    context = {
        "site": site,
        "zone": zone,
        "rows": page.rows,
        "next": None if page.next is None else page.next.encode(),
        "filters": {
            "since": params.since.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
            "until": params.until.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
            "lane": params.lane_id or "",
            "verdict": params.verdict or "",
            "reason": params.reason or "",
            "number": params.masked_number or "",
        },
        "filters_query": _filters_query(params, zone),
        "verdicts": [v.value for v in Verdict],
        "reasons": sorted(r.value for r in Reason),
    }
    return aiohttp_jinja2.render_template("site/scans.html", request, context)


# --------------------------------------------------------------------------- CSV export

CSV_COLUMNS = (
    "Time",
    "Lane",
    "Zone",
    "Direction",
    "Format",
    "Verdict",
    "Reason",
    "Name",
    "Number",
    "Nationality",
    "Minor",
    "Status",
)


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading =, +, -, @ (a formula) is quoted."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv_row(row: queries.ScanRow, zone: zoneinfo.ZoneInfo) -> list[str]:
    values: list[object] = [
        row.ts.astimezone(zone).isoformat(timespec="seconds"),
        row.lane_id,
        row.zone,
        row.direction,
        row.format,
        row.verdict,
        row.reason,
        row.masked_name,
        row.masked_number,
        row.nationality,
        "" if row.minor is None else ("1" if row.minor else "0"),
        row.status,
    ]
    return [csv_cell(v) for v in values]


async def scan_export(request: web.Request) -> web.StreamResponse:
    user, site = await _site(request)
    now = dt.datetime.now(dt.UTC)
    params = log_params(request, site, now)
    lang = i18n.request_language(request)
    zone = _zone(site)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": (
                f'attachment; filename="scans-{now.astimezone(zone):%Y%m%d-%H%M}.csv"'
            ),
        }
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([i18n.translate(lang, c) for c in CSV_COLUMNS])
    rows = 0
    async with request.app[DB_POOL].acquire() as con:
        await audit.record(
            con,
            user.username,
            "export",
            site_id=site.site_id,
            since=params.since.isoformat(),
            until=params.until.isoformat(),
        )
    await response.prepare(request)
    async with (
        request.app[DB_POOL].acquire() as con,
        con.transaction(isolation="repeatable_read", readonly=True),
    ):
        async for row in queries.scan_export(con, user.scope, params):
            writer.writerow(_csv_row(row, zone))
            rows += 1
            if rows % CSV_CHUNK_ROWS == 0:
                await response.write(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode("utf-8"))
    await response.write_eof()
    return response


# --------------------------------------------------------------------------- live feed


def feed_event(row: queries.ScanRow, zone: zoneinfo.ZoneInfo, lang: str) -> str:
    """The JSON of one "scan" event: labels already in the viewer's language, masked only."""
    return json.dumps(
        {
            "time": row.ts.astimezone(zone).strftime("%H:%M:%S"),
            "lane": row.lane_id,
            "direction": i18n.translate(lang, row.direction),
            "verdict": i18n.translate(lang, row.verdict),
            "verdict_code": row.verdict,
            "reason": i18n.translate(lang, row.reason) if row.reason else "",
            "who": row.masked_name or "",
        },
        ensure_ascii=False,
    )


async def live_feed(request: web.Request) -> web.StreamResponse:
    _user, site = await _site(request)
    zone, lang = _zone(site), i18n.request_language(request)
    live = request.app[feed.LIVE_FEED]
    queue = await live.subscribe(site.site_id)
    try:
        async with sse_response(request) as stream:
            while stream.is_connected():
                try:
                    async with asyncio.timeout(FEED_CHECK_S):
                        row = await queue.get()
                except TimeoutError:
                    continue
                if row is None:  # the hub is stopping
                    break
                with contextlib.suppress(ConnectionResetError):
                    await stream.send(feed_event(row, zone, lang), event="scan")
    finally:
        live.unsubscribe(site.site_id, queue)
    return stream


def add_routes(app: web.Application) -> None:
    app.router.add_get("/site", site_picker, name="site_picker")
    app.router.add_get("/site/{site_id}", dashboard, name="site_dashboard")
    app.router.add_get("/site/{site_id}/feed", live_feed, name="site_feed")
    app.router.add_get("/site/{site_id}/scans", scan_log, name="site_scans")
    app.router.add_get("/site/{site_id}/scans.csv", scan_export, name="site_scans_csv")
