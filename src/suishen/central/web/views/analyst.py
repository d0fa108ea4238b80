"""Analyst pages: contact tracing, crowds, watchlist hits (issue 11; analysts and admins only,
site managers and tenants 403 on every route).

Routes::

    GET  /analyst                 to the trace page
    GET  /analyst/trace           form; with ?person_key=..: the index person's visits and the
                                  contacts ranked by overlap, and a link to the audited CSV
                                  export of the analyst API (/api/v1/trace.csv, same parameters)
    POST /analyst/trace           a document (type, number, nationality) -> its person key with
                                  the deployment pepper (audited), then 303 to the GET above, so
                                  a document number never appears in a URL or a log
    GET  /analyst/crowd           occupancy over time of a site or district (inline SVG), peaks,
                                  capacity breaches, and a site's occupancy now
    GET  /analyst/watchlist       watchlist hits by list, site and day with their alert outcome
    GET  /analyst/audit           the audit trail (admins only)

The pages call the same query functions as the analyst API and CLI (central/queries), parsing
their parameters with msgspec into the same Structs; a bad parameter is 400.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

import aiohttp_jinja2
import msgspec
from aiohttp import web

from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.errors import BadRequest
from suishen.central.queries import crowd as crowd_q
from suishen.central.queries import trace as trace_q
from suishen.central.queries import watchlist_hits as hits_q
from suishen.central.store import audit
from suishen.central.web.pageparams import (
    form_fields,
    pepper_of,
    query_int,
    query_params,
)
from suishen.protocol.vocabulary import Role

ANALYSTS: Final = (Role.ANALYST, Role.ADMIN)
TRACE_FIELDS: Final = ("person_key", "days", "margin_minutes", "second_degree")
MAX_DAYS: Final = 28
CHART_W: Final = 720
CHART_H: Final = 180

S = TypeVar("S")


def _analyst(request: web.Request) -> auth.User:
    return auth.require_role(auth.current_user(request), *ANALYSTS)


def _convert(values: dict[str, Any], kind: type[S]) -> S:
    """Query strings into one of the queries' Structs (its constraints checked); else 400."""
    try:
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"bad parameter: {exc}") from None


# --------------------------------------------------------------------------- trace


def _trace_params(request: web.Request) -> tuple[dict[str, str], trace_q.TraceParams | None]:
    raw = query_params(request, TRACE_FIELDS)
    if "person_key" not in raw:
        if set(raw) - {"days", "margin_minutes"}:
            raise BadRequest("a trace needs a person_key", field="person_key")
        return raw, None
    values: dict[str, Any] = dict(raw)
    if "second_degree" in values:
        values["second_degree"] = values["second_degree"] in ("1", "on", "true")
    return raw, _convert(values, trace_q.TraceParams)


async def trace_page(request: web.Request) -> web.StreamResponse:
    user = _analyst(request)
    raw, params = _trace_params(request)
    result = None
    if params is not None:
        async with request.app[DB_POOL].acquire() as con:
            result = await trace_q.trace(con, user.scope, params)
    context = {
        "form": raw,
        "result": result,
        "csv_url": "/api/v1/trace.csv?" + urlencode(raw) if result is not None else None,
        "has_pepper": pepper_of(request) is not None,
    }
    return aiohttp_jinja2.render_template("analyst/trace.html", request, context)


async def trace_by_document(request: web.Request) -> web.StreamResponse:
    user = _analyst(request)
    fields, _ = await form_fields(
        request,
        ("document_type", "document_number", "nationality", "days", "margin_minutes",
         "second_degree"),
    )  # fmt: skip
    pepper = pepper_of(request)
    if pepper is None:
        raise BadRequest("this hub has no person-key pepper: trace by person key")
    if not fields["document_number"].strip() or len(fields["document_number"]) > 32:
        raise BadRequest("a document number is 1 to 32 characters", field="document_number")
    key = trace_q.person_key_for(
        pepper,
        document_type=fields["document_type"].strip().upper(),
        document_number=fields["document_number"],
        nationality=fields["nationality"].strip().upper() or None,
    )
    async with request.app[DB_POOL].acquire() as con:
        await audit.record(con, user.username, "person_key", person_key=key, purpose="trace")
    query = {"person_key": key}
    query.update({k: fields[k] for k in ("days", "margin_minutes", "second_degree") if fields[k]})
    raise web.HTTPSeeOther("/analyst/trace?" + urlencode(query))


# --------------------------------------------------------------------------- crowd


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One bucket of the crowd chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    css: str
    title: str

    @property
    def fill(self) -> str | None:
        """The colour of a bar over capacity (an SVG attribute: the CSP allows no style)."""
        return {"bar-over-hard": "#a4161a", "bar-over-soft": "#b35c00"}.get(self.css)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """An inline SVG bar chart: peak per bucket, and the capacity lines."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    lines: tuple[tuple[str, float], ...]  # (css class, y)
    top: int


def crowd_chart(series: crowd_q.CrowdSeries, fmt: str = "%m-%d %H:%M") -> Chart:
    """The series as bars scaled to the chart (the highest of peak and capacities on top)."""
    buckets = series.buckets
    top = max([series.peak, series.capacity_soft or 0, series.capacity_hard or 0, 1])
    step = CHART_W / max(len(buckets), 1)

    def y_of(value: float) -> float:
        return round(CHART_H - CHART_H * value / top, 1)

    bars = tuple(
        Bar(
            x=round(i * step, 1),
            y=y_of(b.peak),
            width=max(round(step - 1, 1), 0.5),
            height=round(CHART_H - y_of(b.peak), 1),
            css="bar-over-hard" if b.over_hard else "bar-over-soft" if b.over_soft else "bar",
            title=f"{b.start.strftime(fmt)} · {b.peak}",
        )
        for i, b in enumerate(buckets)
    )
    lines = tuple(
        (css, y_of(value))
        for css, value in (("cap-soft", series.capacity_soft), ("cap-hard", series.capacity_hard))
        if value
    )
    return Chart(width=CHART_W, height=CHART_H, bars=bars, lines=lines, top=top)


def _bucket_end(now: dt.datetime, bucket_minutes: int) -> dt.datetime:
    """The end of the bucket holding ``now``, buckets aligned on the epoch (whole hours for an
    hourly series), so the page's buckets are the same from one reload to the next."""
    width = max(bucket_minutes, 1) * 60
    seconds = -(-int(now.timestamp()) // width) * width
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


async def crowd_page(request: web.Request) -> web.StreamResponse:
    user = _analyst(request)
    raw = query_params(request, ("site_id", "district"))
    days = query_int(request, "days", 1)
    bucket = query_int(request, "bucket_minutes", 60)
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"days must be 1 to {MAX_DAYS}", field="days")
    series = now_count = None
    until = _bucket_end(dt.datetime.now(dt.UTC), bucket)
    if raw:
        params = _convert(
            {**raw, "since": until - dt.timedelta(days=days), "until": until,
             "bucket_minutes": bucket},
            crowd_q.CrowdParams,
        )  # fmt: skip
        async with request.app[DB_POOL].acquire() as con:
            series = await crowd_q.crowd(con, user.scope, params)
            if "site_id" in raw:
                now_count = await crowd_q.occupancy(
                    con, user.scope, crowd_q.OccupancyParams(site_id=raw["site_id"])
                )
    context = {
        "form": {**raw, "days": days, "bucket_minutes": bucket},
        "series": series,
        "chart": crowd_chart(series) if series is not None else None,
        "now": now_count,
    }
    return aiohttp_jinja2.render_template("analyst/crowd.html", request, context)


# --------------------------------------------------------------------------- watchlist hits


async def watchlist_page(request: web.Request) -> web.StreamResponse:
    user = _analyst(request)
    raw = query_params(request, ("site_id", "level", "route"))
    days = query_int(request, "days", 7)
    if not 1 <= days <= MAX_DAYS:
        raise BadRequest(f"days must be 1 to {MAX_DAYS}", field="days")
    until = dt.datetime.now(dt.UTC)
    params = _convert(
        {**raw, "since": until - dt.timedelta(days=days), "until": until, "limit": 500},
        hits_q.WatchlistHitsParams,
    )
    async with request.app[DB_POOL].acquire() as con:
        hits = await hits_q.watchlist_hits(con, user.scope, params)
    context = {"form": {**raw, "days": days}, "hits": hits, "states": _states(hits.by_list)}
    return aiohttp_jinja2.render_template("analyst/watchlist.html", request, context)


def _states(groups: Sequence[hits_q.HitCount]) -> tuple[str, ...]:
    return tuple(sorted({state for g in groups for state in g.states}))


async def index(request: web.Request) -> web.StreamResponse:
    _analyst(request)
    raise web.HTTPSeeOther("/analyst/trace")


# --------------------------------------------------------------------------- audit trail (admin)

AUDIT_FIELDS: Final = ("actor", "action", "person_key", "case_ref", "before_id")
AUDIT_PAGE: Final = 100


async def audit_page(request: web.Request) -> web.StreamResponse:
    """The audit trail, newest first, filtered and keyset-paged (admins only).

    It reads the trail through ``store.audit.trail`` and ``AuditParams`` of the analyst branch
    (H4), the same function as ``suishen analyst audit`` and GET /api/v1/audit; on a hub built
    without them the page links that API instead of holding SQL of its own."""
    auth.require_role(auth.current_user(request), Role.ADMIN)
    raw = query_params(request, AUDIT_FIELDS)
    trail = getattr(audit, "trail", None)
    params_type = getattr(audit, "AuditParams", None)
    rows: list[Any] | None = None
    if trail is not None and params_type is not None:
        params = _convert({**raw, "limit": AUDIT_PAGE}, params_type)
        async with request.app[DB_POOL].acquire() as con:
            rows = list(await trail(con, params))
    older = None
    if rows and len(rows) == AUDIT_PAGE:
        older = urlencode({**raw, "before_id": rows[-1].audit_id})
    context = {"form": raw, "rows": rows, "older": older, "api": "/api/v1/audit"}
    return aiohttp_jinja2.render_template("analyst/audit.html", request, context)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/analyst", index, name="analyst_index")
    app.router.add_get("/analyst/trace", trace_page, name="analyst_trace")
    app.router.add_post("/analyst/trace", trace_by_document, name="analyst_trace_document")
    app.router.add_get("/analyst/crowd", crowd_page, name="analyst_crowd")
    app.router.add_get("/analyst/watchlist", watchlist_page, name="analyst_watchlist")
    app.router.add_get("/analyst/audit", audit_page, name="analyst_audit")


__all__ = ["add_routes", "crowd_chart"]
