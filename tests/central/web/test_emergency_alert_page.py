"""An emergency alert from a gateway (issue 13) shows in the site's alerts inbox with its own
label, in Chinese by default."""

from __future__ import annotations

import time

import asyncpg

from suishen.central.ingest import store_alerts
from suishen.gateway.journal.rows import alert_row
from suishen.gateway.records import AlertKind, AlertRaised, AlertRoute
from suishen.sync.wire import encode_batch, parse_batch
from tests.central.alerts.kit import sites
from tests.central.hubkit import SITE

from .conftest import WebClientFactory


async def test_the_inbox_labels_an_emergency_alert(
    db_pool: asyncpg.Pool, web_client: WebClientFactory
) -> None:
    """The gateway's row (no lane, no person) becomes an alert the inbox names 紧急疏散放行."""
    await sites(db_pool)
    alert = AlertRaised(
        kind=AlertKind.EMERGENCY, route=AlertRoute.STAFF, detail="emergency declared (alarm)"
    )
    row = alert_row(alert, ts=time.time(), site_id=SITE, lane_id=None) | {"seq": 1}
    batch = parse_batch(encode_batch("gw-a", [row]), bound_gateway_id="gw-a")
    assert await store_alerts(db_pool, batch) == 1
    wc = await web_client("site_manager", [SITE])
    inbox = await wc.client.get("/alerts")
    assert inbox.status == 200
    assert "紧急疏散放行" in await inbox.text()
