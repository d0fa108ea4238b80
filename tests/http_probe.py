"""One plain HTTP GET for tests that watch a real process's /health and /status."""

from __future__ import annotations

from typing import Any

import aiohttp


async def http_get(url: str, *, timeout_s: float = 5.0) -> tuple[int, Any]:
    """(status, JSON body or text), on a fresh connection each time (a restarted process
    must not meet a kept-alive socket of its predecessor)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()
