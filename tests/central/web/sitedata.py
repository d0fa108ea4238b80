"""Two sites with gateways, scans and device events, for the site pages' tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import asyncpg

SITE_A, SITE_B = "site-a", "site-b"
NAME_A, NAME_B = "张*明", "李*红"  # the masked names the gateways recorded at each site
NUMBER_A = "110***********002X"


def person(n: int) -> str:
    return hashlib.sha256(f"person-{n}".encode()).hexdigest()


async def insert_scan(pool: asyncpg.Pool, seq: int, site_id: str, **over: Any) -> None:
    row: dict[str, Any] = {
        "gateway_id": f"gw-{site_id}",
        "seq": seq,
        "ts": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1000 - seq),
        "site_id": site_id,
        "lane_id": "lobby-in",
        "direction": "in",
        "format": "SSC1",
        "verdict": "allow",
        "reason": None,
        "person_key": person(seq),
        "masked_name": NAME_A if site_id == SITE_A else NAME_B,
        "masked_number": NUMBER_A if site_id == SITE_A else "310***********1234",
        "zone": "main",
    }
    row.update(over)
    columns = ", ".join(row)
    marks = ", ".join(f"${n}" for n in range(1, len(row) + 1))
    await pool.execute(f"INSERT INTO scans ({columns}) VALUES ({marks})", *row.values())


async def two_sites(pool: asyncpg.Pool) -> None:
    """site-a (soft 2, hard 3): three people in (one of them then out), a red code denied;
    site-b: one person in.  A gateway per site and a device down at site-a."""
    for site_id, soft, hard in ((SITE_A, 2, 3), (SITE_B, None, None)):
        await pool.execute(
            "INSERT INTO sites (site_id, kind, name, capacity_soft, capacity_hard) "
            "VALUES ($1, 'building', $1, $2, $3) ON CONFLICT (site_id) DO UPDATE "
            "SET capacity_soft = $2, capacity_hard = $3",
            site_id,
            soft,
            hard,
        )
        await pool.execute(
            "INSERT INTO gateways (gateway_id, site_id, last_seen_at, high_water) "
            "VALUES ($1, $2, now(), 10)",
            f"gw-{site_id}",
            site_id,
        )
    for seq in (1, 2, 3):
        await insert_scan(pool, seq, SITE_A)
    await insert_scan(pool, 4, SITE_A, direction="out", lane_id="lobby-out", person_key=person(3))
    await insert_scan(
        pool, 5, SITE_A, verdict="deny", reason="status_red", person_key=person(9), zone="garage"
    )
    await insert_scan(pool, 1, SITE_B)
    await pool.execute(
        "INSERT INTO device_events (gateway_id, seq, ts, site_id, lane_id, detail) "
        "VALUES ('gw-site-a', 6, now() - interval '1 minute', 'site-a', 'lobby-in', $1)",
        json.dumps({"device": "gate", "state": "down"}),
    )
