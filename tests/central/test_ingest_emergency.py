"""The hub takes the gateway's emergency records (issue 13): emergency alerts journalled by a
real gateway Journal (no lane, no scan, no person) pass the wire checks, are stored by the fast
lane and the bulk upload once each as alerts of kind 'emergency' (migration 0013's CHECK) with
their routes, and the alarm input's edges land in device_events."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.central.ingest import ingest, store_alerts
from suishen.gateway.journal import Journal, JournalConfig
from suishen.gateway.records import AlertKind, AlertRaised, AlertRoute
from suishen.sync.wire import encode_batch, parse_batch

from .hubkit import SITE, register


async def test_emergency_alerts_and_alarm_edges_are_stored(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Declared (police + staff), the alarm edge, ended (staff): three alerts, one device
    event, nothing rejected; the fast lane then the bulk upload store each alert once."""
    await register(db_pool, "gw-1")
    journal = Journal(
        JournalConfig(path=tmp_path / "journal.sqlite3"),
        gateway_id="gw-1",
        site_id=SITE,
        hub_public_key=X25519PrivateKey.generate().public_key(),
    )
    await journal.start()
    try:
        now = time.time()
        for route in (AlertRoute.POLICE, AlertRoute.STAFF):
            alert = AlertRaised(
                kind=AlertKind.EMERGENCY, route=route, detail="emergency declared (alarm)"
            )
            await journal.append_alert(alert, ts=now)
        await journal.append_device(ts=now, lane_id=None, device_id="emergency/alarm", state="set")
        ended = AlertRaised(
            kind=AlertKind.EMERGENCY, route=AlertRoute.STAFF, detail="emergency ended (local)"
        )
        await journal.append_alert(ended, ts=now + 1)
        rows = [row.as_dict() for row in await journal.read_unsynced(0)]
    finally:
        await journal.close()
    document = encode_batch("gw-1", rows, journal_id=journal.journal_id)
    batch = parse_batch(document, bound_gateway_id="gw-1")
    assert batch.rejected == []
    alerts_only = parse_batch(
        encode_batch(
            "gw-1", [r for r in rows if r["kind"] == "alert"], journal_id=journal.journal_id
        ),
        bound_gateway_id="gw-1",
    )
    assert await store_alerts(db_pool, alerts_only) == 3
    result = await ingest(db_pool, batch)
    assert (result.inserted, result.duplicates, result.rejected) == (1, 3, ())
    async with db_pool.acquire() as con:
        stored = await con.fetch("SELECT kind, route, lane_id, detail FROM alerts ORDER BY seq")
        assert [(r["kind"], r["route"], r["lane_id"]) for r in stored] == [
            ("emergency", "police", None),
            ("emergency", "staff", None),
            ("emergency", "staff", None),
        ]
        assert await con.fetchval("SELECT count(*) FROM device_events") == 1
