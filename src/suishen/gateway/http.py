"""The gateway's local HTTP listener (loopback by default): /health, /status, /metrics; and
``start_listener``, which also serves the lane display (gateway/display_http.py) when enabled.

The handlers only read: the daemon hands in a StatusSource; nothing here touches devices or
the journal directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web


class StatusSource(Protocol):
    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): healthy while the journal takes writes and lanes run."""

    def status(self) -> dict[str, Any]:
        """Lanes and devices, list versions and age, journal backlog."""

    def metrics_text(self) -> str:
        """Prometheus text exposition."""


SOURCE = web.AppKey("source", StatusSource)


async def _health(request: web.Request) -> web.Response:
    healthy, details = request.app[SOURCE].health()
    return web.json_response({"ok": healthy, **details}, status=200 if healthy else 503)


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[SOURCE].status())


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[SOURCE].metrics_text(),
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
        charset="utf-8",
    )


def make_app(source: StatusSource) -> web.Application:
    app = web.Application()
    app[SOURCE] = source
    app.router.add_get("/health", _health)
    app.router.add_get("/status", _status)
    app.router.add_get("/metrics", _metrics)
    return app


async def start_http(
    source: StatusSource,
    host: str,
    port: int,
    *,
    extend: Callable[[web.Application], None] | None = None,
) -> web.AppRunner:
    """Start the status listener; returns the runner (await runner.cleanup() to stop).
    ``extend`` adds routes that act (the emergency's: gateway/emergency_http.py)."""
    app = make_app(source)
    if extend is not None:
        extend(app)
    return await start_listener(app, host, port)


async def start_listener(
    app: web.Application, host: str, port: int, *, shutdown_timeout_s: float = 2.0
) -> web.AppRunner:
    """Serve ``app`` (the status listener, or the lane display's: gateway/display_http.py);
    returns the runner (await runner.cleanup() to stop; requests still open after
    ``shutdown_timeout_s`` are cancelled)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (for port 0 in tests)."""
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("HTTP listener is not bound")
