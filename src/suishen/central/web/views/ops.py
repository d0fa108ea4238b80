"""/health and /metrics on the web listener (issue 14): for supervisors and Prometheus.

Both are public (no login): the web listener is on loopback by default; put it behind your
proxy's access rules before exposing it. /health answers 200 ``{"status": "ok"}`` when the
database answers within HEALTH_TIMEOUT_S, else 503 ``{"status": "down", "reasons": [...]}``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from suishen import __version__
from suishen.central import auth
from suishen.central.db import DB_POOL
from suishen.central.metrics import HUB_METRICS
from suishen.central.queries.ops import database_ok

HEALTH_TIMEOUT_S = 2.0


@auth.public
async def health(request: web.Request) -> web.Response:
    reasons = []
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), request.app[DB_POOL].acquire() as con:
            if not await database_ok(con):
                reasons.append("database answered wrongly")
    except (TimeoutError, OSError, Exception) as exc:  # noqa: BLE001 - any failure is "down"
        reasons.append(f"database unreachable: {type(exc).__name__}")
    status = "down" if reasons else "ok"
    return web.json_response(
        {"status": status, "reasons": reasons, "version": __version__},
        status=503 if reasons else 200,
    )


@auth.public
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[HUB_METRICS].render(), content_type="text/plain", charset="utf-8"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
