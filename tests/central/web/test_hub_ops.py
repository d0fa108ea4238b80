"""The hub seen without SQL (issue 14, item 4): a batch uploaded over mutual TLS is logged at
info, counted in the hub's metrics, and its sender's backlog recorded; `suishen hub status`
shows the gateway (last upload, backlog, high water, certificate expiry) and the lists; `suishen
hub scans` lists the site's scans masked as table, JSON or CSV; the web listener answers
/health and /metrics."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ed25519
from structlog.testing import capture_logs

from suishen.central.app import gateway_app, serve
from suishen.central.metrics import HubMetrics
from suishen.central.web.app import web_app
from suishen.cli import main
from suishen.sync import pki
from suishen.sync.wire import BACKLOG_HEADER
from tests.central.hubkit import SITE, body, register, scan_row
from tests.central.test_gateway_api import NOW, Hub
from tests.central.web.conftest import hub_config

GATEWAY = "gw-ops"


@pytest.fixture
async def metrics() -> HubMetrics:
    return HubMetrics()


@pytest.fixture
async def hub(db_pool: asyncpg.Pool, tmp_path: Path, metrics: HubMetrics) -> AsyncIterator[Hub]:
    """The gateway listener over mutual TLS, counting into ``metrics``."""
    layout = pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_hub(layout.root, now=NOW)
    key = ed25519.Ed25519PrivateKey.generate()
    app = gateway_app(bundle_key=key, pool=db_pool, bundle_poll_s=60, metrics=metrics)
    runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
    try:
        yield Hub(f"https://localhost:{port}", layout, key, db_pool)
    finally:
        await runner.cleanup()


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _upload(hub_: Hub, backlog: str | None) -> None:
    rows = [scan_row(1), scan_row(2, verdict="deny", reason="expired")]
    headers = {} if backlog is None else {BACKLOG_HEADER: backlog}
    async with (
        hub_.client(GATEWAY) as client,
        client.post("/v1/ingest", json=body(GATEWAY, rows), headers=headers) as answer,
    ):
        assert answer.status == 200


async def test_an_upload_is_logged_counted_and_its_backlog_kept(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """One info line per batch with its counts; the metrics count rows by outcome; the
    X-Suishen-Backlog header lands in gateways.reported_backlog (a nonsense value is ignored)."""
    await register(db_pool, GATEWAY)
    with capture_logs() as logs:
        await _upload(hub, "41")
    [line] = [e for e in logs if e["event"] == "batch ingested"]
    assert line["log_level"] == "info"
    assert (line["gateway_id"], line["inserted"], line["backlog"]) == (GATEWAY, 2, 41)
    row = await db_pool.fetchrow(
        "SELECT reported_backlog, reported_backlog_at FROM gateways WHERE gateway_id = $1", GATEWAY
    )
    assert row["reported_backlog"] == 41 and row["reported_backlog_at"] is not None
    await _upload(hub, "-3; DROP TABLE scans")
    assert (
        await db_pool.fetchval(
            "SELECT reported_backlog FROM gateways WHERE gateway_id = $1", GATEWAY
        )
        == 41
    )


async def test_hub_status_and_scans(
    hub: Hub, db_pool: asyncpg.Pool, cli_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hub status` shows the gateway with its backlog and certificate expiry; `hub scans`
    gives the site's two scans in each format, masked."""
    await register(db_pool, GATEWAY)
    await _upload(hub, "7")
    await db_pool.execute(
        "UPDATE gateway_certificates SET not_after = now() + interval '10 days' "
        "WHERE gateway_id = $1",
        GATEWAY,
    )
    assert await _cli("hub", "status", "--dsn", cli_dsn) == 0
    out = capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if ln.startswith(GATEWAY)]
    assert SITE in line and " 7 " in line and "expires in" in line and "rotate it" in line
    assert await _cli("hub", "status", "--dsn", cli_dsn, "--format", "json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["gateways"][0]["reported_backlog"] == 7

    scans = ("hub", "scans", "--site", SITE, "--since", "2h", "--dsn", cli_dsn)
    assert await _cli(*scans, "--format", "json") == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert sorted(r["verdict"] for r in rows) == ["allow", "deny"]
    assert {r["gateway_id"] for r in rows} == {GATEWAY}
    assert await _cli(*scans, "--format", "csv", "--verdict", "deny") == 0
    [denied] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert denied["reason"] == "expired"
    assert await _cli(*scans, "--since", "yesterday") == 2
    assert "not a time" in capsys.readouterr().err


async def test_metrics_and_health_on_the_web_listener(
    hub: Hub, db_pool: asyncpg.Pool, metrics: HubMetrics
) -> None:
    """After one batch the gateway listener's counts are what the web listener's /metrics
    shows (the same HubMetrics, as `hub run` wires them), without a login; /health is ok."""
    web = web_app(pool=db_pool, config=hub_config(), metrics=metrics)
    async with TestClient(TestServer(web)) as anon_client:
        await _metrics_and_health(hub, db_pool, anon_client)


async def _metrics_and_health(hub: Hub, db_pool: asyncpg.Pool, anon_client: TestClient) -> None:
    await register(db_pool, GATEWAY)
    await _upload(hub, None)
    answer = await anon_client.get("/metrics")
    assert answer.status == 200
    text = await answer.text()
    assert f'suishen_hub_ingest_batches_total{{gateway="{GATEWAY}"}} 1' in text
    assert 'suishen_hub_ingest_rows_total{outcome="inserted"} 2' in text
    assert "suishen_hub_ingest_seconds_count 1" in text
    assert 'suishen_hub_pool_connections{state="size"}' in text
    assert 'suishen_hub_bundle_version{list="watchlist"}' in text
    health = await anon_client.get("/health")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"
