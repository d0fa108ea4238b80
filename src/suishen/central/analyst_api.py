"""The analyst API: JSON under /api/v1 on the web listener (DESIGN §7; issue 11 items 2-4).

Thin: no SQL here.  Each handler checks the role (analysts and admins; the audit trail and the
access report: admins only; site managers and tenants get 403 everywhere), decodes its
msgspec params or body, calls the one function that does the work (central/queries/ through
``openapi.QUERIES``, central/reveal.py, central/retention.py, central/store/watchlist.py,
central/store/audit.py) and encodes the result.  ``OPERATIONS`` lists every operation; the
OpenAPI document served at /api/v1/openapi.json is built from it (central/openapi.py), so the
document and the handlers use the same types.

Auth is H1's middleware: a session cookie (with CSRF on unsafe methods) or a bearer token.
Personal data: answers carry person keys and masked values; a document number is accepted only
in a JSON body (never in a URL, which access logs keep), and only the reveal answer holds a
full identity (audited).  The trace CSV export is audited (``audit_export``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg
import msgspec
from aiohttp import web

from suishen.central import auth, retention
from suishen.central.config import HubConfig
from suishen.central.db import DB_POOL
from suishen.central.errors import BadRequest, Unavailable
from suishen.central.keys import HubKeyError, load_seal_key
from suishen.central.openapi import API_PREFIX, Operation, Query, available_queries, document
from suishen.central.reveal import (
    AccessReport,
    AccessReportRequest,
    RevealRequest,
    RevealResult,
    access_report,
    check_why,
    reveal,
)
from suishen.central.store import audit
from suishen.central.store import watchlist as wl
from suishen.central.web.app import HUB_CONFIG
from suishen.protocol.sealing import HubOpener
from suishen.protocol.vocabulary import Role

T = TypeVar("T")
R = TypeVar("R")
OPENER: web.AppKey[list[HubOpener]] = web.AppKey("analyst_opener", list)
ANALYSTS: Final = (Role.ANALYST, Role.ADMIN)
JSON: Final = "application/json"


# --------------------------------------------------------------------------- request helpers


def _user(request: web.Request, *, admin: bool = False) -> auth.User:
    user = auth.current_user(request)
    return auth.require_role(user, Role.ADMIN) if admin else auth.require_role(user, *ANALYSTS)


def _is_sequence(field_type: Any) -> bool:
    info = msgspec.inspect.type_info(field_type)
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_sequence_info(t) for t in info.types)
    return _is_sequence_info(info)


def _is_sequence_info(info: Any) -> bool:
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    sequences = (
        msgspec.inspect.ListType,
        msgspec.inspect.VarTupleType,
        msgspec.inspect.SetType,
        msgspec.inspect.FrozenSetType,
    )
    return isinstance(info, sequences)


def query_params(request: web.Request, params_type: type[T]) -> T:
    """The params Struct from the query string (unknown or repeated parameters: 400)."""
    fields = msgspec.structs.fields(params_type)  # type: ignore[arg-type]
    names = {f.encode_name for f in fields}
    unknown = sorted(set(request.query) - names)
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(unknown)[:200]}")
    data: dict[str, Any] = {}
    for field in fields:
        values = request.query.getall(field.encode_name, [])
        if not values:
            continue
        if _is_sequence(field.type):
            data[field.encode_name] = values
        elif len(values) > 1:
            raise BadRequest(f"parameter {field.encode_name} given more than once")
        else:
            data[field.encode_name] = values[0]
    try:
        return msgspec.convert(data, params_type, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"bad parameter: {exc}") from None


async def json_body(request: web.Request, body_type: type[T]) -> T:
    """The JSON body as ``body_type`` (another content type or a bad body: 400)."""
    if request.content_type != JSON:
        raise BadRequest("the body must be application/json")
    try:
        return msgspec.json.decode(await request.read(), type=body_type)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"bad body: {exc}") from None


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), status=status, content_type=JSON)


async def _guarded(call: Awaitable[R]) -> R:
    """Values the database or the datetime arithmetic refuse (a year out of range) are the
    caller's mistake: 400, not 500."""
    try:
        return await call
    except (OverflowError, asyncpg.DataError) as exc:
        raise BadRequest(f"value out of range: {type(exc).__name__}") from None


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet shows as text: a leading =, +, -, @ (a formula) is quoted."""
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _config(request: web.Request) -> HubConfig:
    return request.app.get(HUB_CONFIG) or HubConfig()


def _pepper(request: web.Request) -> bytes | None:
    """The deployment pepper ([privacy] pepper_file, else the variable pepper_env), or None."""
    privacy = _config(request).privacy
    if privacy.pepper_file is not None:
        try:
            value = Path(privacy.pepper_file).read_bytes().strip()
        except OSError:
            raise Unavailable("the hub cannot read its pepper file") from None
    else:
        value = os.environ.get(privacy.pepper_env, "").strip().encode()
    return value if len(value) >= 16 else None


def _opener(request: web.Request) -> HubOpener:
    """The hub's sealing key (loaded once per app)."""
    cache = request.app[OPENER]
    if not cache:
        try:
            cache.append(HubOpener(load_seal_key(_config(request).hub.state_dir)))
        except HubKeyError:
            raise Unavailable("the hub's sealing key is not available") from None
    return cache[0]


def _retention_policy(config: HubConfig) -> retention.RetentionPolicy:
    kept = config.retention
    return retention.RetentionPolicy(
        days=kept.days,
        stays_days=kept.stays_days,
        keep_alerts_days=kept.keep_alerts_days,
        keep_audit_days=kept.keep_audit_days,
    )


# --------------------------------------------------------------------------- structs


class DocumentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A document to turn into its person key (the number travels in a body only)."""

    document: wl.Document


class PersonKeyAnswer(msgspec.Struct, frozen=True, kw_only=True):
    person_key: str


class RemoveParams(msgspec.Struct, frozen=True, kw_only=True):
    """Why a watchlist entry is removed (kept in the audit trail)."""

    reason: str = ""


class NoParams(msgspec.Struct, frozen=True, kw_only=True):
    """No parameters."""


# --------------------------------------------------------------------------- handlers

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _query_handler(query: Query) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        user = _user(request)
        params: Any = query_params(request, query.params)
        async with request.app[DB_POOL].acquire() as con:
            result = await _guarded(query.function(con, user.scope, params))
        return json_response(result)

    return handler


def _trace_csv_handler(query: Query) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        user = _user(request)
        params: Any = query_params(request, query.params)
        async with request.app[DB_POOL].acquire() as con:
            result = await _guarded(query.function(con, user.scope, params))
            contacts = result.contacts
            await audit.audit_export(
                con, user, what="trace.csv", rows=len(contacts),
                params=msgspec.to_builtins(params),
            )  # fmt: skip
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["person_key", "degree", "via_person_key", "overlap_minutes", "visits", "site_ids",
             "first_contact_ts", "masked_name", "masked_number"]
        )  # fmt: skip
        for c in contacts:
            writer.writerow(
                [c.person_key, c.degree, c.via_person_key or "", f"{c.overlap_minutes:.1f}",
                 c.visits, _csv_safe(" ".join(c.site_ids)), c.first_contact_ts.isoformat(),
                 _csv_safe(c.masked_name or ""), _csv_safe(c.masked_number or "")]
            )  # fmt: skip
        return web.Response(
            body=("\ufeff" + out.getvalue()).encode("utf-8"),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="trace.csv"'},
        )

    return handler


async def person_key_lookup(request: web.Request) -> web.StreamResponse:
    user = _user(request)
    body = await json_body(request, DocumentRequest)
    key = wl.key_of(body.document, _pepper(request))
    async with request.app[DB_POOL].acquire() as con:
        await audit.record(con, user.username, "person_key_lookup", person_key=key,
                           user_id=user.user_id)  # fmt: skip
    return json_response(PersonKeyAnswer(person_key=key))


async def reveal_handler(request: web.Request) -> web.StreamResponse:
    user = _user(request)
    body = await json_body(request, RevealRequest)
    if (body.person_key is None) == (not body.records):
        raise BadRequest("give records or a person_key (one of them)")
    check_why(body.reason, body.case_ref)  # before the key is loaded: a 400 is a 400
    opener = _opener(request)
    target = body.person_key if body.person_key is not None else body.records
    async with request.app[DB_POOL].acquire() as con:
        result = await _guarded(reveal(con, user, target, body.reason, body.case_ref,
                                       opener=opener))  # fmt: skip
    return json_response(result)


async def audit_handler(request: web.Request) -> web.StreamResponse:
    _user(request, admin=True)
    params = query_params(request, audit.AuditParams)
    async with request.app[DB_POOL].acquire() as con:
        rows = await _guarded(audit.trail(con, params))
    return json_response(rows)


async def watchlist_list(request: web.Request) -> web.StreamResponse:
    _user(request)
    params = query_params(request, wl.WatchlistParams)
    async with request.app[DB_POOL].acquire() as con:
        return json_response(await wl.list_entries(con, params))


async def watchlist_add(request: web.Request) -> web.StreamResponse:
    user = _user(request)
    body = await json_body(request, wl.WatchlistAdd)
    async with request.app[DB_POOL].acquire() as con:
        entry = await _guarded(
            wl.add(con, user, body, pepper=_pepper(request), now=_now(),
                   max_days=_config(request).privacy.watchlist_max_days)
        )  # fmt: skip
    return json_response(entry, status=201)


async def watchlist_get(request: web.Request) -> web.StreamResponse:
    _user(request)
    async with request.app[DB_POOL].acquire() as con:
        return json_response(await wl.get(con, request.match_info["person_key"]))


async def watchlist_change(request: web.Request) -> web.StreamResponse:
    user = _user(request)
    body = await json_body(request, wl.WatchlistChange)
    async with request.app[DB_POOL].acquire() as con:
        entry = await _guarded(
            wl.change(con, user, request.match_info["person_key"], body, now=_now(),
                      max_days=_config(request).privacy.watchlist_max_days)
        )  # fmt: skip
    return json_response(entry)


async def watchlist_remove(request: web.Request) -> web.StreamResponse:
    user = _user(request)
    params = query_params(request, RemoveParams)
    async with request.app[DB_POOL].acquire() as con:
        entry = await wl.remove(con, user, request.match_info["person_key"], reason=params.reason)
    return json_response(entry)


async def access_report_handler(request: web.Request) -> web.StreamResponse:
    user = _user(request, admin=True)
    body = await json_body(request, AccessReportRequest)
    async with request.app[DB_POOL].acquire() as con:
        report = await access_report(con, user, body, pepper=_pepper(request))
    return json_response(report)


async def retention_handler(request: web.Request) -> web.StreamResponse:
    _user(request)
    query_params(request, NoParams)
    async with request.app[DB_POOL].acquire() as con:
        return json_response(
            await retention.status(con, policy=_retention_policy(_config(request)))
        )


# --------------------------------------------------------------------------- the table

KEY: Final = ("person_key",)

FIXED: Final[tuple[tuple[Operation, Handler], ...]] = (
    (Operation(method="post", path="/person-key", operation_id="personKey",
               summary="the person key of a document (audited)", body=DocumentRequest,
               result=PersonKeyAnswer), person_key_lookup),
    (Operation(method="post", path="/reveal", operation_id="reveal",
               summary="open sealed identities with a reason and a case (audited)",
               body=RevealRequest, result=RevealResult), reveal_handler),
    (Operation(method="get", path="/audit", operation_id="audit", summary="the audit trail",
               params=audit.AuditParams, result=list[audit.AuditRow], admin_only=True),
     audit_handler),
    (Operation(method="get", path="/watchlist", operation_id="watchlistList",
               summary="watchlist entries", params=wl.WatchlistParams,
               result=list[wl.WatchlistEntry]), watchlist_list),
    (Operation(method="post", path="/watchlist", operation_id="watchlistAdd",
               summary="add a watchlist entry (audited)", body=wl.WatchlistAdd,
               result=wl.WatchlistEntry, status=201), watchlist_add),
    (Operation(method="get", path="/watchlist/{person_key}", operation_id="watchlistGet",
               summary="one watchlist entry", result=wl.WatchlistEntry, path_params=KEY),
     watchlist_get),
    (Operation(method="patch", path="/watchlist/{person_key}", operation_id="watchlistChange",
               summary="change a watchlist entry (audited)", body=wl.WatchlistChange,
               result=wl.WatchlistEntry, path_params=KEY), watchlist_change),
    (Operation(method="delete", path="/watchlist/{person_key}", operation_id="watchlistRemove",
               summary="remove a watchlist entry (audited)", params=RemoveParams,
               result=wl.WatchlistEntry, path_params=KEY), watchlist_remove),
    (Operation(method="post", path="/access-report", operation_id="accessReport",
               summary="a person's own access report (admin, audited)",
               body=AccessReportRequest, result=AccessReport, admin_only=True),
     access_report_handler),
    (Operation(method="get", path="/retention", operation_id="retention",
               summary="what is kept and the last retention run", params=NoParams,
               result=retention.RetentionStatus), retention_handler),
)  # fmt: skip


def operations() -> list[tuple[Operation, Handler]]:
    """Every operation with its handler: the available queries, then the fixed ones."""
    found: list[tuple[Operation, Handler]] = []
    for query in available_queries():
        camel = query.name.replace("-", " ").title().replace(" ", "")
        found.append(
            (
                Operation(method="get", path=f"/{query.name}",
                          operation_id=camel[0].lower() + camel[1:],
                          summary=f"{query.name} ({query.function.__module__})",
                          params=query.params, result=query.result),
                _query_handler(query),
            )
        )  # fmt: skip
        if query.name == "trace":
            found.append(
                (
                    Operation(method="get", path="/trace.csv", operation_id="traceCsv",
                              summary="trace contacts as CSV (audited export)",
                              params=query.params, csv=True),
                    _trace_csv_handler(query),
                )
            )  # fmt: skip
    return found + list(FIXED)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API."""
    return document(op for op, _handler in operations())


def add_routes(app: web.Application) -> None:
    """Mount /api/v1 (VIEW_MODULES of central/web/app.py)."""
    app[OPENER] = []
    table = operations()
    spec = msgspec.json.encode(document(op for op, _handler in table))

    @auth.public
    async def openapi_json(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=spec, content_type=JSON)

    app.router.add_get(API_PREFIX + "/openapi.json", openapi_json, name="api_openapi")
    for op, handler in table:
        app.router.add_route(op.method.upper(), API_PREFIX + op.path, handler)
