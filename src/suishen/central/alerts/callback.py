"""The signed callback: the receiving platform posts accept / handle / feedback for an alert.

``POST /hooks/alerts/{alert_id}`` with ``Content-Type: application/json``, a body
``{"action": "accept" | "handle" | "feed_back", "note": "..."}`` (at most 16 KiB) and the same
``X-Suishen-Signature`` header as the hub's deliveries, made with the secret of the alert's
route or of the route it was dispatched to. The step is taken as actor ``platform:<route>``.

Refused, with nothing changed: another content type (415), a body too large (413), a missing,
malformed, stale (more than 5 minutes off) or non-matching signature (403, the same answer
whether or not the alert exists, so the endpoint does not tell alert ids apart), a signature
already used (replay, 409), malformed JSON or an action the platform may not take (400), a step
the loop does not allow from the alert's state (409).

The route needs no session: the signature is its authentication (the web app marks it public).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import msgspec
import structlog
from aiohttp import web

from suishen.central.alerts.endpoints import SecretError, read_secret
from suishen.central.alerts.loop import MAX_NOTE, advance
from suishen.central.alerts.signing import HEADER, WINDOW_S, SignatureError, verify
from suishen.central.db import DB_POOL
from suishen.central.errors import BadRequest, Conflict, Forbidden, PayloadTooLarge
from suishen.central.scope import Scope
from suishen.protocol.alert_loop import AlertAction

__all__ = ["CALLBACK_PATH", "PLATFORM_ACTIONS", "UnsupportedMediaType", "add_routes", "callback"]

log = structlog.get_logger("suishen.central.alerts.callback")

CALLBACK_PATH: Final = "/hooks/alerts/{alert_id}"
MAX_BODY: Final = 16 * 1024
PLATFORM_ACTIONS: Final = frozenset({AlertAction.ACCEPT, AlertAction.HANDLE, AlertAction.FEED_BACK})


class UnsupportedMediaType(BadRequest):
    status = 415
    code = "unsupported_media_type"


class CallbackBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    action: str
    note: str = ""


async def _secrets(request: web.Request) -> list[tuple[str, bytes]]:
    async with request.app[DB_POOL].acquire() as con:
        rows = await con.fetch(
            "SELECT route, secret_file FROM webhook_endpoints WHERE enabled ORDER BY route"
        )
    found = []
    for row in rows:
        try:
            found.append((row["route"], await asyncio.to_thread(read_secret, row["secret_file"])))
        except SecretError as exc:
            log.warning("webhook_secret_unusable", route=row["route"], error=str(exc))
    return found


async def _body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("the callback takes application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"the callback body holds at most {MAX_BODY} bytes")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"the callback body holds at most {MAX_BODY} bytes")
    return body


async def callback(request: web.Request) -> web.Response:
    """The handler of CALLBACK_PATH (see the module docstring)."""
    body = await _body(request)
    try:
        route, signature = verify(
            request.headers.get(HEADER), body, await _secrets(request), now=time.time()
        )
    except SignatureError as exc:
        log.warning("webhook_callback_refused", reason=exc.reason)
        raise Forbidden("callback signature refused", reason=exc.reason) from None
    try:
        alert_id = int(request.match_info["alert_id"])
    except ValueError:
        raise BadRequest("alert id must be a number", field="alert_id") from None
    try:
        parsed = msgspec.json.decode(body, type=CallbackBody)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"callback body: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequest("callback body is not JSON") from None
    if parsed.action not in {a.value for a in PLATFORM_ACTIONS}:
        raise BadRequest("the platform may accept, handle or feed_back", field="action")
    if len(parsed.note) > MAX_NOTE:
        raise BadRequest(f"a note holds at most {MAX_NOTE} characters", field="note")
    async with request.app[DB_POOL].acquire() as con, con.transaction():
        await con.execute(
            "DELETE FROM webhook_callbacks_seen WHERE seen_at < now() - make_interval(secs => $1)",
            WINDOW_S * 2,
        )
        fresh = await con.fetchval(
            "INSERT INTO webhook_callbacks_seen (signature) VALUES ($1) "
            "ON CONFLICT DO NOTHING RETURNING true",
            signature,
        )
        if not fresh:
            raise Conflict("callback already taken (replay)", reason="replay")
        mine = await con.fetchval(
            "SELECT true FROM alerts WHERE alert_id = $1 AND (route = $2 OR dispatched_to = $2)",
            alert_id,
            route,
        )
        if not mine:
            # the same answer as a bad signature: the platform's secret is not this alert's
            raise Forbidden("callback signature refused", reason="mismatch")
        view = await advance(
            con, Scope.everywhere(), alert_id, parsed.action, f"platform:{route}", parsed.note
        )
    return web.json_response({"alert_id": view.alert_id, "state": view.state})


def add_routes(app: web.Application) -> None:
    """Register the callback route on ``app`` (which must have DB_POOL)."""
    app.router.add_post(CALLBACK_PATH, callback, name="alert_callback")
