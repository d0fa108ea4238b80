"""A small city for the query tests: sites, and people placed at them at chosen times.

``City.visit(site, person, at, hours)`` writes the allowed in scan (and the out scan, unless
``hours`` is None) into the scans table as a gateway of that site would, and ``derive()`` runs
the real derivation (central/derive.py) over everything written, so the visits the queries read
are the ones ingest would make.  Times are hours after T0 (05:00 UTC, three days ago: one hour
after the 04:00 UTC daily reset of the kit's sites, whose timezone is UTC).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

import asyncpg

from suishen.central.derive import derive_scans
from suishen.central.partitions import ensure_partitions_for

NOW = dt.datetime.now(dt.UTC)
T0 = dt.datetime.combine(NOW.date() - dt.timedelta(days=3), dt.time(5), tzinfo=dt.UTC)


def key(name: str) -> str:
    """A person key for a readable name."""
    return hashlib.sha256(f"kit:{name}".encode()).hexdigest()


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


class City:
    def __init__(self, con: asyncpg.Connection) -> None:
        self.con = con
        self.seq = itertools.count(1)
        self.events: dict[str, list[tuple[str, str, dt.datetime]]] = {}
        self.days: set[dt.date] = set()

    async def site(
        self,
        site_id: str,
        *,
        kind: str = "venue",
        district: str = "",
        lat: float | None = None,
        lon: float | None = None,
        capacity_soft: int | None = None,
        capacity_hard: int | None = None,
    ) -> None:
        await self.con.execute(
            "INSERT INTO sites (site_id, kind, timezone, district, lat, lon, capacity_soft, "
            "capacity_hard) VALUES ($1, $2, 'UTC', $3, $4, $5, $6, $7)",
            site_id,
            kind,
            district,
            lat,
            lon,
            capacity_soft,
            capacity_hard,
        )
        await self.con.execute(
            "INSERT INTO gateways (gateway_id, site_id) VALUES ($1, $2)", f"gw-{site_id}", site_id
        )

    async def scan(
        self,
        site_id: str,
        person: str | None,
        ts: dt.datetime,
        direction: str = "in",
        *,
        verdict: str = "allow",
        reason: str | None = None,
        lane_id: str = "lane-1",
        **extra: Any,
    ) -> None:
        if ts.date() not in self.days:
            await ensure_partitions_for(self.con, "scans", [ts.date()])
            self.days.add(ts.date())
        columns = {
            "gateway_id": f"gw-{site_id}",
            "seq": next(self.seq),
            "ts": ts,
            "site_id": site_id,
            "lane_id": lane_id,
            "direction": direction,
            "format": "SSC1",
            "verdict": verdict,
            "reason": reason if verdict == "allow" else reason or "denied",
            "person_key": person,
            "masked_name": "张*明" if person else None,
            "masked_number": "310***********1234" if person else None,
            **extra,
        }
        names = ", ".join(columns)
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await self.con.execute(
            f"INSERT INTO scans ({names}) VALUES ({marks})",
            *columns.values(),
        )
        if verdict == "allow" and person is not None:
            self.events.setdefault(site_id, []).append((person, direction, ts))

    async def visit(
        self, site_id: str, person: str, start: float, hours: float | None, **extra: Any
    ) -> None:
        """``person`` in at T0 + start hours, out ``hours`` later (None: no out)."""
        await self.scan(site_id, person, at(start), "in", **extra)
        if hours is not None:
            await self.scan(site_id, person, at(start + hours), "out", **extra)

    async def derive(self, now: dt.datetime = NOW) -> None:
        async with self.con.transaction():
            for site_id, events in self.events.items():
                await derive_scans(self.con, site_id, events, now=now)
        self.events.clear()
