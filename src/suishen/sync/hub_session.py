"""The gateway's one HTTPS session to the hub: mutual TLS, keep-alive, shared by the uploader,
the alert fast lane and the bundle long-polls (DESIGN §6)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from suishen.sync.pki import gateway_ssl_context

# Five long-polls (one per bundle kind), the bulk uploader and the alert fast lane, with room.
_CONNECTIONS = 10


def hub_session(ca: Path, client_cert: Path, client_key: Path) -> aiohttp.ClientSession:
    """A ClientSession that verifies the hub against the deployment CA and presents this
    gateway's certificate; keep-alive connections are reused.  Close it with ``await
    session.close()``.  Per-request deadlines are set by the callers."""
    ssl_context = gateway_ssl_context(ca, client_cert, client_key)
    connector = aiohttp.TCPConnector(ssl=ssl_context, limit=_CONNECTIONS, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        raise_for_status=False,
        headers={"User-Agent": "suishen-gateway"},
    )
