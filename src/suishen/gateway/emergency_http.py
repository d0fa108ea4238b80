"""The emergency's routes on the local status listener (loopback by default):

- ``POST /emergency`` with ``{"state": "on"|"off", "actor": "...", "note": "..."}`` declares
  or ends the emergency (source LOCAL); answers ``{"changed": bool, "emergency": {...}}``.
  A body that is not that (not JSON, an unknown key, a bad value, over 4 KiB) is a 400 naming
  the field. The request must be ``Content-Type: application/json`` and carry no ``Origin``
  header: a web page in a browser on the gateway's machine can then not trigger it (a
  cross-origin JSON POST needs a CORS preflight, which this listener never grants).
- ``GET /muster``: who is inside now, by zone, masked (``Emergency.muster()``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from suishen.gateway.emergency import Emergency, EmergencySource
from suishen.protocol.emergency import MAX_ACTOR, MAX_NOTE, EmergencyStateError, check_text

EMERGENCY = web.AppKey("emergency", Emergency)
MAX_BODY = 4096
_KEYS = frozenset({"state", "actor", "note"})


class BadCommand(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_command(data: Any) -> tuple[bool, str, str]:
    """(declare?, actor, note) from a POST /emergency body; BadCommand naming the field."""
    if not isinstance(data, dict):
        raise BadCommand("body", "must be a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise BadCommand(unknown[0], "unknown key")
    state = data.get("state")
    if state not in ("on", "off"):
        raise BadCommand("state", 'must be "on" or "off"')
    actor, note = data.get("actor"), data.get("note", "")
    if not isinstance(actor, str) or not actor.strip():
        raise BadCommand("actor", "must be a non-empty string (who gives the command)")
    try:
        return (
            state == "on",
            check_text("actor", actor, MAX_ACTOR),
            check_text("note", note, MAX_NOTE),
        )
    except EmergencyStateError as exc:
        raise BadCommand(exc.field, exc.problem) from None


def _bad(field: str, problem: str, status: int = 400) -> web.Response:
    return web.json_response({"error": problem, "field": field}, status=status)


async def _post_emergency(request: web.Request) -> web.Response:
    if request.headers.get("Origin") is not None:
        return _bad("Origin", "not accepted from a browser page", 403)
    if request.content_type != "application/json":
        return _bad("Content-Type", "must be application/json", 415)
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _bad("body", f"over {MAX_BODY} bytes", 413)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return _bad("body", f"over {MAX_BODY} bytes", 413)
    try:
        declare, actor, note = parse_command(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, BadCommand):
            return _bad(exc.field, exc.problem)
        return _bad("body", "not JSON")
    emergency = request.app[EMERGENCY]
    if declare:
        changed = await emergency.declare(source=EmergencySource.LOCAL, actor=actor, note=note)
    else:
        changed = await emergency.end(source=EmergencySource.LOCAL, actor=actor, note=note)
    return web.json_response({"changed": changed, "emergency": emergency.status()})


async def _get_muster(request: web.Request) -> web.Response:
    muster = request.app[EMERGENCY].muster()
    return web.json_response(muster, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def add_emergency_routes(app: web.Application, emergency: Emergency) -> None:
    app[EMERGENCY] = emergency
    app.router.add_post("/emergency", _post_emergency)
    app.router.add_get("/muster", _get_muster)
