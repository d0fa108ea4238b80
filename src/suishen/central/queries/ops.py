"""What an operator reads about the hub itself (issue 14): each gateway's state and the lists.

``hub_status(con, scope)``: every gateway in scope with its site, enabled flag, last upload,
high water, the backlog it last reported (X-Suishen-Backlog) and when, and its pinned
certificate's expiry; and each signed list's version. ``database_ok(con)``: the database
answers. Front doors: `suishen hub status` and the web listener's /health.
"""

# Query texts are assembled only from Scope.sql and placeholders: no value is ever formatted in.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import datetime as dt

from suishen.central.connection import Connection
from suishen.central.scope import Scope


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayStatus:
    gateway_id: str
    site_id: str
    enabled: bool
    last_seen_at: dt.datetime | None
    high_water: int
    reported_backlog: int | None
    reported_backlog_at: dt.datetime | None
    certificate_not_after: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ListVersion:
    kind: str
    version: int
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HubStatus:
    gateways: tuple[GatewayStatus, ...]
    lists: tuple[ListVersion, ...]


async def hub_status(con: Connection, scope: Scope) -> HubStatus:
    gateways = await con.fetch(
        f"""
        SELECT g.gateway_id, g.site_id, g.enabled, g.last_seen_at, g.high_water,
               g.reported_backlog, g.reported_backlog_at, c.not_after AS certificate_not_after
        FROM gateways g
        LEFT JOIN gateway_certificates c
          ON c.gateway_id = g.gateway_id AND c.cert_sha256 = g.cert_sha256
        WHERE {Scope.sql("$1", "g.site_id")}
        ORDER BY g.site_id, g.gateway_id
        """,
        scope.sql_param(),
    )
    lists = await con.fetch("SELECT kind, version, updated_at FROM bundle_versions ORDER BY kind")
    return HubStatus(
        gateways=tuple(GatewayStatus(**dict(row)) for row in gateways),
        lists=tuple(ListVersion(**dict(row)) for row in lists),
    )


async def database_ok(con: Connection) -> bool:
    return bool(await con.fetchval("SELECT true"))
