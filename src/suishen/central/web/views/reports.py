"""Analyst report pages for the queries without a page of their own (issue 11): the weekly hotel
check, construction attendance and anomalies (analysts and admins; others 403).

    GET /analyst/report/{name}      a form from the query's params Struct; with parameters, the
                                    result as tables (one per list in it) and its other values

The parameters are decoded exactly as the analyst API decodes them (analyst_api.query_params:
unknown or repeated parameters and bad values are 400), and the same query function answers
(central/analyst_queries), so the page, the JSON and `suishen analyst` give one answer.
"""

from __future__ import annotations

import json
from typing import Any, Final

import aiohttp_jinja2
import msgspec
from aiohttp import web

from suishen.central import auth
from suishen.central.analyst_api import query_params
from suishen.central.analyst_queries import load_query
from suishen.central.db import DB_POOL
from suishen.central.errors import NotFound
from suishen.protocol.vocabulary import Role

# name -> page title (a msgid)
REPORTS: Final = {
    "hotel-check": "Hotel check",
    "construction": "Construction attendance",
    "anomalies": "Anomalies",
}


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


def tables(
    result: Any,
) -> tuple[list[tuple[str, str]], list[tuple[str, list[str], list[list[str]]]]]:
    """The result's scalar values (name, text) and its lists of rows (name, columns, rows)."""
    data = msgspec.to_builtins(result)
    if not isinstance(data, dict):
        data = {"result": data}
    values, lists = [], []
    for name, value in data.items():
        if isinstance(value, (list, tuple)) and all(isinstance(row, dict) for row in value):
            columns = list(value[0]) if value else []
            lists.append((name, columns, [[_cell(row.get(c)) for c in columns] for row in value]))
        else:
            values.append((name, _cell(value)))
    return values, lists


async def report_page(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(auth.current_user(request), Role.ANALYST, Role.ADMIN)
    name = request.match_info["name"]
    query = load_query(name) if name in REPORTS else None
    if query is None:
        raise NotFound(f"no report {name!r}")
    fields = [f.encode_name for f in msgspec.structs.fields(query.params)]
    context: dict[str, Any] = {
        "name": name,
        "title": REPORTS[name],
        "fields": fields,
        "form": {f: request.query.get(f, "") for f in fields},
        "values": [],
        "lists": [],
        "shown": False,
    }
    if request.query:
        params: Any = query_params(request, query.params)
        async with request.app[DB_POOL].acquire() as con:
            result = await query.function(con, user.scope, params)
        context["values"], context["lists"] = tables(result)
        context["shown"] = True
    return aiohttp_jinja2.render_template("analyst/report.html", request, context)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/analyst/report/{name}", report_page, name="analyst_report")
