"""A webhook receiver on loopback playing the police / city-operations platform: a real aiohttp
server that checks each delivery's signature itself (its own HMAC code, not the hub's) and
posts signed callbacks back to the hub."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from aiohttp import web


def signature(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def check(secret: bytes, header: str, body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) <= 300 and hmac.compare_digest(expected, parts["v1"])


class Platform:
    """POST /<route>: a delivery; answers 500 while ``failures[route]`` > 0 (counting down)."""

    def __init__(self) -> None:
        self.secrets: dict[str, bytes] = {}
        self.failures: dict[str, int] = {}
        self.received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.refused = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _delivery(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        body = await request.read()
        header = request.headers.get("X-Suishen-Signature", "")
        if request.content_type != "application/json" or not check(
            self.secrets[route], header, body
        ):
            self.refused += 1
            return web.Response(status=401)
        if self.failures.get(route, 0) > 0:
            self.failures[route] -= 1
            return web.Response(status=500)
        await self.received.put((route, json.loads(body)))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{route}", self._delivery)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def next(self, wait_s: float = 10.0) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.received.get(), wait_s)


async def post_callback(
    hub_url: str,
    path: str,
    secret: bytes,
    document: Any,
    *,
    timestamp: int | None = None,
    content_type: str = "application/json",
    raw: bytes | None = None,
    header: str | None = None,
) -> tuple[int, bytes]:
    """POST a signed callback to the hub; (status, body)."""
    body = raw if raw is not None else json.dumps(document).encode()
    headers = {"Content-Type": content_type}
    sig = signature(secret, body, timestamp) if header is None else header
    if sig:
        headers["X-Suishen-Signature"] = sig
    async with (
        aiohttp.ClientSession() as session,
        session.post(hub_url + path, data=body, headers=headers) as response,
    ):
        return response.status, await response.read()
