"""What a site's staff see: the site, who is inside, entries by hour, health, the scan log.

Every function takes ``(con, scope, params)`` and filters by the Scope in its SQL (DESIGN §7):
a site outside the scope is NotFound (never confirmed), exactly like a site that does not
exist.  Rows carry only the masked name and number the gateway recorded (DESIGN §4).

- ``sites(con, scope)``: the sites in scope (the site picker);
- ``site_info``: one site (kind, timezone, capacity soft/hard);
- ``inside_now``: per person, the latest allowed scan since the site's day began; those whose
  latest was an entry are inside (with zone and masked name);
- ``entries_by_hour``: allowed entries per local hour of one day;
- ``gateway_health``: per gateway its last contact, records held, upload delay and the latest
  device state per lane; ``list_ages``: the lists the hub publishes, version and age;
- ``open_alerts``: alerts of the site not yet closed;
- ``recent_scans``: scans received after a point (the live feed);
- ``scan_log``: one keyset page of scans by filters; ``scan_export``: every row by the same
  filters, streamed from a server-side cursor (call inside a transaction).
"""

# Query texts are assembled only from this module's constants, Scope.sql and placeholder
# numbers; every value is a bind parameter ($n).
# ruff: noqa: S608

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.scope import Scope

ENTRY_DIRECTIONS = ("in", "checkin")
OPEN_ALERT_STATES_DONE = ("fed_back", "closed")
PAGE_SIZE = 50
EXPORT_PREFETCH = 1000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SiteInfo:
    site_id: str
    kind: str
    name: str
    timezone: str
    capacity_soft: int | None
    capacity_hard: int | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SiteParams:
    site_id: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DayParams:
    """One site over [start, end) (the site's local day, as UTC instants)."""

    site_id: str
    start: dt.datetime
    end: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InsidePerson:
    zone: str
    masked_name: str
    masked_number: str
    since: dt.datetime
    lane_id: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HourCount:
    hour: int
    entries: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceState:
    lane_id: str
    device: str
    state: str
    ts: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayHealth:
    gateway_id: str
    enabled: bool
    certificate_pinned: bool
    last_seen_at: dt.datetime | None
    high_water: int
    last_received_at: dt.datetime | None
    upload_delay_s: float | None  # received_at - ts of the newest scan received today
    devices: tuple[DeviceState, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ListAge:
    kind: str
    version: int
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScanRow:
    ts: dt.datetime
    gateway_id: str
    journal_id: str
    seq: int
    site_id: str
    lane_id: str
    zone: str
    direction: str
    format: str
    verdict: str
    reason: str | None
    masked_name: str | None
    masked_number: str | None
    nationality: str | None
    minor: bool | None
    status: str | None
    received_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScanCursor:
    """Where a scan-log page ends (newest first): the last row's key."""

    ts: dt.datetime
    gateway_id: str
    journal_id: str
    seq: int

    def encode(self) -> str:
        raw = json.dumps([self.ts.isoformat(), self.gateway_id, self.journal_id, self.seq])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> ScanCursor:
        """The cursor in ``text``; BadRequest for anything that is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, gateway_id, journal_id, seq = json.loads(raw)
            when = dt.datetime.fromisoformat(ts)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequest("not a page cursor", field="after") from exc
        typed = isinstance(gateway_id, str) and isinstance(journal_id, str)
        if when.tzinfo is None or type(seq) is not int or not typed:
            raise BadRequest("not a page cursor", field="after")
        return cls(ts=when, gateway_id=gateway_id, journal_id=journal_id, seq=seq)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScanLogParams:
    """Filters of the scan log (None: any)."""

    site_id: str
    since: dt.datetime
    until: dt.datetime
    lane_id: str | None = None
    verdict: str | None = None
    reason: str | None = None
    masked_number: str | None = None  # any part of the masked number, e.g. its last digits
    after: ScanCursor | None = None
    limit: int = PAGE_SIZE


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScanPage:
    rows: tuple[ScanRow, ...]
    next: ScanCursor | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RecentParams:
    site_ids: tuple[str, ...]
    received_after: dt.datetime
    limit: int = 100


# --------------------------------------------------------------------------- the site


_SITE_COLUMNS = "site_id, kind, name, timezone, capacity_soft, capacity_hard"


def _site(row: asyncpg.Record) -> SiteInfo:
    return SiteInfo(**dict(row))


async def sites(con: Connection, scope: Scope) -> tuple[SiteInfo, ...]:
    rows = await con.fetch(
        f"SELECT {_SITE_COLUMNS} FROM sites WHERE {Scope.sql('$1')} ORDER BY site_id",
        scope.sql_param(),
    )
    return tuple(_site(row) for row in rows)


async def site_info(con: Connection, scope: Scope, params: SiteParams) -> SiteInfo:
    """The site; NotFound when it does not exist or is outside the scope."""
    row = await con.fetchrow(
        f"SELECT {_SITE_COLUMNS} FROM sites WHERE site_id = $2 AND {Scope.sql('$1')}",
        scope.sql_param(),
        params.site_id,
    )
    if row is None:
        raise NotFound(f"no site {params.site_id!r}", site_id=params.site_id)
    return _site(row)


async def inside_now(con: Connection, scope: Scope, params: DayParams) -> tuple[InsidePerson, ...]:
    rows = await con.fetch(
        f"""
        SELECT zone, masked_name, masked_number, ts, lane_id FROM (
            SELECT DISTINCT ON (person_key) person_key, zone, direction, ts, lane_id,
                   coalesce(masked_name, '') AS masked_name,
                   coalesce(masked_number, '') AS masked_number
            FROM scans
            WHERE site_id = $2 AND {Scope.sql("$1")} AND verdict = 'allow'
              AND person_key IS NOT NULL AND ts >= $3 AND ts < $4
            ORDER BY person_key, ts DESC
        ) latest
        WHERE direction = ANY($5::text[])
        ORDER BY zone, ts
        """,
        scope.sql_param(),
        params.site_id,
        params.start,
        params.end,
        list(ENTRY_DIRECTIONS),
    )
    return tuple(
        InsidePerson(
            zone=r["zone"],
            masked_name=r["masked_name"],
            masked_number=r["masked_number"],
            since=r["ts"],
            lane_id=r["lane_id"],
        )
        for r in rows
    )


async def entries_by_hour(
    con: Connection, scope: Scope, params: DayParams, timezone: str
) -> tuple[HourCount, ...]:
    """Allowed entries per hour (0-23, in ``timezone``) of [start, end); all 24 hours."""
    rows = await con.fetch(
        f"""
        SELECT extract(hour FROM ts AT TIME ZONE $5)::int AS hour, count(*) AS entries
        FROM scans
        WHERE site_id = $2 AND {Scope.sql("$1")} AND verdict = 'allow'
          AND direction = ANY($6::text[]) AND ts >= $3 AND ts < $4
        GROUP BY 1
        """,
        scope.sql_param(),
        params.site_id,
        params.start,
        params.end,
        timezone,
        list(ENTRY_DIRECTIONS),
    )
    counts = {r["hour"]: r["entries"] for r in rows}
    return tuple(HourCount(hour=h, entries=counts.get(h, 0)) for h in range(24))


async def gateway_health(
    con: Connection, scope: Scope, params: DayParams
) -> tuple[GatewayHealth, ...]:
    gateways = await con.fetch(
        f"""
        SELECT g.gateway_id, g.enabled, g.cert_sha256 IS NOT NULL AS pinned, g.last_seen_at,
               g.high_water, newest.received_at AS last_received_at,
               extract(epoch FROM newest.received_at - newest.ts)::float8 AS upload_delay_s
        FROM gateways g
        LEFT JOIN LATERAL (
            SELECT s.received_at, s.ts FROM scans s
            WHERE s.site_id = g.site_id AND s.gateway_id = g.gateway_id
              AND s.ts >= $3 AND s.ts < $4
            ORDER BY s.ts DESC LIMIT 1
        ) newest ON true
        WHERE g.site_id = $2 AND {Scope.sql("$1", "g.site_id")}
        ORDER BY g.gateway_id
        """,
        scope.sql_param(),
        params.site_id,
        params.start,
        params.end,
    )
    devices = await con.fetch(
        f"""
        SELECT DISTINCT ON (gateway_id, lane_id, detail->>'device')
               gateway_id, coalesce(lane_id, '') AS lane_id,
               coalesce(detail->>'device', '') AS device,
               coalesce(detail->>'state', '') AS state, ts
        FROM device_events
        WHERE site_id = $2 AND {Scope.sql("$1")} AND ts >= $3 AND ts < $4
        ORDER BY gateway_id, lane_id, detail->>'device', ts DESC
        """,
        scope.sql_param(),
        params.site_id,
        params.start - dt.timedelta(days=1),
        params.end,
    )
    by_gateway: dict[str, list[DeviceState]] = {}
    for d in devices:
        by_gateway.setdefault(d["gateway_id"], []).append(
            DeviceState(lane_id=d["lane_id"], device=d["device"], state=d["state"], ts=d["ts"])
        )
    return tuple(
        GatewayHealth(
            gateway_id=g["gateway_id"],
            enabled=g["enabled"],
            certificate_pinned=g["pinned"],
            last_seen_at=g["last_seen_at"],
            high_water=g["high_water"],
            last_received_at=g["last_received_at"],
            upload_delay_s=g["upload_delay_s"],
            devices=tuple(by_gateway.get(g["gateway_id"], ())),
        )
        for g in gateways
    )


async def list_ages(con: Connection, scope: Scope) -> tuple[ListAge, ...]:
    """The signed lists every gateway fetches (not personal data: any scope)."""
    del scope
    rows = await con.fetch("SELECT kind, version, updated_at FROM bundle_versions ORDER BY kind")
    return tuple(ListAge(**dict(r)) for r in rows)


async def open_alerts(con: Connection, scope: Scope, params: SiteParams) -> int:
    count: int = await con.fetchval(
        f"SELECT count(*) FROM alerts WHERE site_id = $2 AND {Scope.sql('$1')} "
        "AND state <> ALL($3::text[])",
        scope.sql_param(),
        params.site_id,
        list(OPEN_ALERT_STATES_DONE),
    )
    return count


# --------------------------------------------------------------------------- scans

_SCAN_COLUMNS = """ts, gateway_id, journal_id, seq, site_id, lane_id, zone, direction, format,
    verdict, reason, masked_name, masked_number, nationality, minor, status, received_at"""


def _scan(row: asyncpg.Record) -> ScanRow:
    return ScanRow(**dict(row))


async def recent_scans(con: Connection, scope: Scope, params: RecentParams) -> tuple[ScanRow, ...]:
    """Scans of these sites (within the scope) received after ``received_after``, oldest
    first."""
    rows = await con.fetch(
        f"""
        SELECT {_SCAN_COLUMNS} FROM scans
        WHERE site_id = ANY($2::text[]) AND {Scope.sql("$1")} AND received_at > $3
          AND ts > $3 - interval '1 day'
        ORDER BY received_at, ts LIMIT $4
        """,
        scope.sql_param(),
        list(params.site_ids),
        params.received_after,
        params.limit,
    )
    return tuple(_scan(r) for r in rows)


def _log_where(params: ScanLogParams) -> tuple[str, list[Any]]:
    clauses = ["site_id = $2", Scope.sql("$1"), "ts >= $3", "ts < $4"]
    args: list[Any] = [params.site_id, params.since, params.until]
    for column, value in (
        ("lane_id", params.lane_id),
        ("verdict", params.verdict),
        ("reason", params.reason),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args) + 1}")
    if params.masked_number is not None:
        args.append(params.masked_number)
        clauses.append(f"strpos(masked_number, ${len(args) + 1}) > 0")
    return " AND ".join(clauses), args


async def scan_log(con: Connection, scope: Scope, params: ScanLogParams) -> ScanPage:
    """One page of scans by the filters, newest first, after ``params.after``."""
    where, args = _log_where(params)
    if params.after is not None:
        a = params.after
        args += [a.ts, a.gateway_id, a.journal_id, a.seq]
        n = len(args) + 1
        where += f" AND (ts, gateway_id, journal_id, seq) < (${n - 3}, ${n - 2}, ${n - 1}, ${n})"
    args.append(params.limit + 1)
    rows = await con.fetch(
        f"SELECT {_SCAN_COLUMNS} FROM scans WHERE {where} "
        f"ORDER BY ts DESC, gateway_id DESC, journal_id DESC, seq DESC LIMIT ${len(args) + 1}",
        scope.sql_param(),
        *args,
    )
    page = tuple(_scan(r) for r in rows[: params.limit])
    more = len(rows) > params.limit
    last = page[-1] if page and more else None
    cursor = (
        None
        if last is None
        else ScanCursor(
            ts=last.ts, gateway_id=last.gateway_id, journal_id=last.journal_id, seq=last.seq
        )
    )
    return ScanPage(rows=page, next=cursor)


async def scan_export(
    con: Connection, scope: Scope, params: ScanLogParams
) -> AsyncIterator[ScanRow]:
    """Every scan by the filters (``after`` and ``limit`` ignored), newest first, from a
    server-side cursor: constant memory however many rows.  Call inside a transaction."""
    where, args = _log_where(params)
    query = (
        f"SELECT {_SCAN_COLUMNS} FROM scans WHERE {where} "
        "ORDER BY ts DESC, gateway_id DESC, journal_id DESC, seq DESC"
    )
    async for row in con.cursor(query, scope.sql_param(), *args, prefetch=EXPORT_PREFETCH):
        yield _scan(row)
