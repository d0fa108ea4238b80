"""Webhook endpoints, one per route: URL, the file holding its secret, enabled.

Set with ``suishen hub webhook set ROUTE URL --secret-file F`` (or ``set_endpoint``); the secret
itself never enters the database: the hub reads the file (first line, at least 16 bytes) when
it signs a delivery or checks a callback, so rotating it is rewriting the file.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Final

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.protocol.vocabulary import AlertRoute

__all__ = ["Endpoint", "SecretError", "endpoints", "read_secret", "set_endpoint"]

MIN_SECRET: Final = 16
MAX_SECRET: Final = 4096


class SecretError(OSError):
    """A webhook secret file that cannot be used (missing, empty, short, too open)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    route: AlertRoute
    url: str
    secret_file: str
    enabled: bool


def read_secret(path: str) -> bytes:
    """The secret in ``path``: its first line; refused if group/other may read the file."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        with file.open("rb") as handle:
            data = handle.read(MAX_SECRET + 1)
    except OSError as exc:
        raise SecretError(f"webhook secret file unreadable ({type(exc).__name__})") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError("webhook secret file is readable by group or others")
    secret = data.split(b"\n", 1)[0].strip()
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise SecretError(f"webhook secret must be {MIN_SECRET}..{MAX_SECRET} bytes")
    return secret


async def set_endpoint(
    con: Connection,
    route: AlertRoute | str,
    url: str,
    secret_file: str | os.PathLike[str],
    *,
    enabled: bool = True,
) -> Endpoint:
    """Create or replace the endpoint of ``route``; ``secret_file`` is an absolute path to a
    file usable now (0600, at least 16 bytes on its first line)."""
    try:
        route = AlertRoute(route)
    except ValueError:
        raise BadRequest("unknown route", field="route") from None
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise BadRequest("url must be http(s)://... (at most 2000 characters)", field="url")
    path = os.fspath(secret_file)
    if not Path(path).is_absolute():
        raise BadRequest("the secret file's path must be absolute", field="secret_file")
    try:
        read_secret(path)
    except SecretError as exc:
        raise BadRequest(str(exc), field="secret_file") from exc
    await con.execute(
        "INSERT INTO webhook_endpoints (route, url, secret_file, enabled) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (route) DO UPDATE SET url = EXCLUDED.url, "
        "secret_file = EXCLUDED.secret_file, enabled = EXCLUDED.enabled, updated_at = now()",
        route.value,
        url,
        path,
        enabled,
    )
    return Endpoint(route=route, url=url, secret_file=path, enabled=enabled)


async def endpoints(con: Connection) -> list[Endpoint]:
    """Every configured endpoint, by route."""
    rows = await con.fetch(
        "SELECT route, url, secret_file, enabled FROM webhook_endpoints ORDER BY route"
    )
    return [
        Endpoint(
            route=AlertRoute(r["route"]),
            url=r["url"],
            secret_file=r["secret_file"],
            enabled=r["enabled"],
        )
        for r in rows
    ]
