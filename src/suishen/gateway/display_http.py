"""The lane display's HTTP listener (off by default; [display] in the gateway config).

Routes, per lane this gateway runs (any other lane id: 404):

    GET /display/{lane_id}          the full-screen page for the lane's tablet
    GET /display/{lane_id}/events   server-sent events: one ``verdict`` event per decided scan
    GET /static/display/{name}      display.js and display.css (no inline script or style)

Every response carries a strict Content-Security-Policy (scripts, styles and the event stream
from this origin only; nothing from a CDN). The listener is separate from the status listener
(/health, /status, /metrics) so a tablet's network reaches nothing else of the gateway.

aiohttp-sse (the ``web`` extra) is imported here, and this module is imported only when the
display is enabled: a gateway without the extra runs as long as the display is off.
"""

from __future__ import annotations

import asyncio
import html
import json
from importlib import resources

from aiohttp import web
from aiohttp_sse import sse_response

from suishen.gateway.display import DisplayEvent, DisplayHub, Subscription

HUB = web.AppKey("display_hub", DisplayHub)
CLEAR_AFTER_S = web.AppKey("display_clear_after_s", float)
SPEAK = web.AppKey("display_speak", bool)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PING_S = 15.0  # a comment line on the stream now and then, so a dead tablet is noticed
_STATIC = {"display.js": "application/javascript", "display.css": "text/css"}
_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>通道 {lane} · 随申门</title>
<link rel="stylesheet" href="/static/display/display.css">
<script src="/static/display/display.js" defer></script>
</head>
<body class="idle" data-lane="{lane}" data-events="{events}" data-clear-after-ms="{clear_ms}"
 data-speak="{speak}">
<main id="panel" aria-live="assertive">
<p id="lane">通道 {lane}</p>
<p id="verdict">请扫码</p>
<p id="name"></p>
<p id="reason"></p>
</main>
<p id="link" class="down">连接中…</p>
</body>
</html>
"""


async def _secure(_request: web.Request, response: web.StreamResponse) -> None:
    """Headers on every response, pages, errors and event streams alike."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")


def _lane(request: web.Request) -> str:
    lane_id = request.match_info["lane_id"]
    if lane_id not in request.app[HUB].lane_ids:
        raise web.HTTPNotFound(text="no such lane")
    return lane_id


async def _page(request: web.Request) -> web.Response:
    lane_id = _lane(request)
    lane = html.escape(lane_id, quote=True)
    body = _PAGE.format(
        lane=lane,
        events=html.escape(f"/display/{lane_id}/events", quote=True),
        clear_ms=round(request.app[CLEAR_AFTER_S] * 1000),
        speak="true" if request.app[SPEAK] else "false",
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def _events(request: web.Request) -> web.StreamResponse:
    lane_id = _lane(request)
    hub = request.app[HUB]
    subscription = hub.subscribe(lane_id)
    try:
        async with sse_response(request, ping_interval=PING_S) as stream:
            recent = hub.recent(lane_id, request.app[CLEAR_AFTER_S])
            if recent is not None:
                await stream.send(json.dumps(recent.as_json(), ensure_ascii=False), event="verdict")
            # The ping fails once the tablet is gone: that ends the stream even on a quiet
            # lane (the subscription must not wait for the next scan to notice).
            gone = asyncio.ensure_future(stream.wait())
            try:
                while (event := await _next(subscription, gone)) is not None:
                    await stream.send(
                        json.dumps(event.as_json(), ensure_ascii=False),
                        event="verdict",
                        id=str(event.seq),
                    )
            finally:
                gone.cancel()
        return stream
    finally:
        hub.unsubscribe(subscription)


async def _next(subscription: Subscription, gone: asyncio.Future[None]) -> DisplayEvent | None:
    """The subscription's next event; None when the hub closed it or the tablet is gone."""
    if gone.done():
        return None
    get = asyncio.ensure_future(subscription.queue.get())
    await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
    if not get.done():
        get.cancel()
        return None
    return get.result()


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _STATIC.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    data = resources.files("suishen.gateway").joinpath("static", "display", name).read_bytes()
    return web.Response(
        body=data,
        content_type=content_type,
        charset="utf-8",
        headers={"Cache-Control": "max-age=300"},
    )


async def _no_icon(_request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask for one; a 404 would be a console error


def make_display_app(hub: DisplayHub, *, clear_after_s: float, speak: bool) -> web.Application:
    app = web.Application()
    app.on_response_prepare.append(_secure)
    app[HUB] = hub
    app[CLEAR_AFTER_S] = clear_after_s
    app[SPEAK] = speak
    app.router.add_get("/display/{lane_id}", _page)
    app.router.add_get("/display/{lane_id}/events", _events)
    app.router.add_get("/static/display/{name}", _static)
    app.router.add_get("/favicon.ico", _no_icon)
    return app
