"""Gateway certificates pinned at the hub: re-issue replaces, revoke refuses at once, disabled
gateways get 403 everywhere -- over real mutual TLS on 127.0.0.1 (DESIGN §6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.app import gateway_app, serve
from suishen.central.store.gateways import GatewayChangeError, pin_certificate, revoke_certificate
from suishen.cli import main
from suishen.sync import pki

from .hubkit import SITE, body, register, scan_row

NOW = dt.datetime.now(dt.UTC)
GW = "gw-cert"


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


@pytest.fixture
def layout(tmp_path: Path) -> pki.PkiLayout:
    layout = pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_hub(layout.root, now=NOW)
    return layout


@pytest.fixture
async def url(db_pool: asyncpg.Pool, layout: pki.PkiLayout) -> AsyncIterator[str]:
    # A cache TTL of an hour: whatever refuses a certificate within the test is the NOTIFY.
    app = gateway_app(
        bundle_key=ed25519.Ed25519PrivateKey.generate(),
        pool=db_pool,
        bundle_poll_s=60,
        gateway_cache_ttl_s=3600,
    )
    runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
    try:
        yield f"https://localhost:{port}"
    finally:
        await runner.cleanup()


def keep(layout: pki.PkiLayout, tmp_path: Path, name: str) -> pki.PkiLayout:
    """A copy of the gateway's current certificate and key (what a gateway has on disk)."""
    copy = pki.PkiLayout(tmp_path / name)
    (copy.root / "gateways").mkdir(parents=True)
    shutil.copy(layout.ca_cert, copy.ca_cert)
    shutil.copy(layout.gateway_cert(GW), copy.gateway_cert(GW))
    shutil.copy(layout.gateway_key(GW), copy.gateway_key(GW))
    return copy


def session(url: str, layout: pki.PkiLayout) -> aiohttp.ClientSession:
    """A keep-alive client (one connection, reused) presenting ``layout``'s certificate."""
    ctx = pki.gateway_ssl_context_for(layout, GW)
    return aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=ctx, limit=1))


async def upload(client: aiohttp.ClientSession, seq: int) -> int:
    async with client.post("/v1/ingest", json=body(GW, [scan_row(seq)])) as response:
        await response.read()
        return response.status


async def refused_within(client: aiohttp.ClientSession, seq: int, limit_s: float) -> float:
    """Seconds until an upload with this client's certificate gets 403 (fails after limit_s)."""
    started = time.monotonic()
    while (status := await upload(client, seq)) != 403:
        assert status == 200
        assert time.monotonic() - started < limit_s, "still accepted"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_reissue_replaces_and_revoke_refuses_at_once(
    url: str, layout: pki.PkiLayout, cli_dsn: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A gateway registered with certificate A uploads with it; `hub gateway reissue` makes
    certificate B: A is refused (403) on its already-open connection and on a new one, B is
    served; `hub gateway revoke` refuses B within a second although the hub caches gateways for
    an hour; a new certificate pinned after that works again, and the revoked one stays out."""
    pki.issue_gateway(layout.root, GW, now=NOW)
    old = keep(layout, tmp_path, "old")
    assert await _cli("hub", "gateway", "add", GW, "--site", SITE, "--kind", "building",
                      "--cert", str(old.gateway_cert(GW)), "--dsn", cli_dsn) == 0  # fmt: skip
    async with session(url, old) as client_a:
        assert await upload(client_a, 1) == 200
        assert await _cli("hub", "gateway", "reissue", GW, "--pki", str(layout.root),
                          "--dsn", cli_dsn) == 0  # fmt: skip
        await refused_within(client_a, 2, 1.0)
    async with session(url, old) as fresh_a, fresh_a.get("/v1/bundles/watchlist") as response:
        assert response.status == 403
        assert "replaced or revoked" in (await response.json())["error"]
    new = keep(layout, tmp_path, "new")
    async with session(url, new) as client_b:
        assert await upload(client_b, 3) == 200
        assert await _cli("hub", "gateway", "revoke", GW, "--dsn", cli_dsn) == 0
        assert await refused_within(client_b, 4, 1.0) < 1.0
    assert await _cli("hub", "gateway", "revoke", GW, "--dsn", cli_dsn) == 3  # none pinned now
    # The revoked certificate cannot be pinned again; a new one can.
    assert await _cli("hub", "gateway", "add", GW, "--site", SITE, "--kind", "building",
                      "--cert", str(new.gateway_cert(GW)), "--dsn", cli_dsn) == 2  # fmt: skip
    assert await _cli("hub", "gateway", "reissue", GW, "--pki", str(layout.root),
                      "--dsn", cli_dsn) == 0  # fmt: skip
    async with session(url, layout) as client_c:
        assert await upload(client_c, 5) == 200
    stored = await db_pool.fetch("SELECT seq FROM scans ORDER BY seq")
    assert [r["seq"] for r in stored] == [1, 3, 5]
    history = await db_pool.fetch(
        "SELECT retired_why FROM gateway_certificates WHERE gateway_id = $1 "
        "ORDER BY registered_at, retired_why NULLS LAST",
        GW,
    )
    assert [r["retired_why"] for r in history] == ["replaced", "revoked", None]


async def test_disabled_gateway_is_refused_on_every_request(
    url: str, layout: pki.PkiLayout, cli_dsn: str, db_pool: asyncpg.Pool
) -> None:
    """With its current certificate, a disabled gateway gets 403 on uploads, alerts, bundles
    and even a path that does not exist (no route is reachable); enabled again, it is served."""
    cert, _ = pki.issue_gateway(layout.root, GW, now=NOW)
    await register(db_pool, GW, cert=cert)
    async with session(url, layout) as client:
        assert await upload(client, 1) == 200
        assert await _cli("hub", "gateway", "disable", GW, "--dsn", cli_dsn) == 0
        await refused_within(client, 2, 1.0)
        for method, path in (("POST", "/v1/alerts"), ("GET", "/v1/bundles/trust"),
                             ("GET", "/v1/nothing-here")):  # fmt: skip
            async with client.request(method, path, json=body(GW, [])) as response:
                assert response.status == 403, path
        assert await _cli("hub", "gateway", "enable", GW, "--dsn", cli_dsn) == 0
        started = time.monotonic()
        while await upload(client, 3) != 200:
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.01)


async def test_registered_gateway_without_a_pinned_certificate_is_refused(
    url: str, layout: pki.PkiLayout, db_pool: asyncpg.Pool
) -> None:
    """A gateway registered with no certificate pinned (as rows made before pinning) is
    refused even with a valid CA-signed certificate naming it: the CA alone is not enough."""
    pki.issue_gateway(layout.root, GW, now=NOW)
    await register(db_pool, GW)
    async with (
        session(url, layout) as client,
        client.post("/v1/ingest", json=body(GW, [scan_row(1)])) as response,
    ):
        assert response.status == 403
        assert "no certificate is registered" in (await response.json())["error"]
    assert await db_pool.fetchval("SELECT count(*) FROM scans") == 0


async def test_pin_refuses_retired_foreign_and_unknown(
    con: asyncpg.Connection, layout: pki.PkiLayout
) -> None:
    """pin_certificate refuses a gateway that is not registered, a certificate another gateway
    holds, and one already retired; pinning the current one again changes nothing."""
    await register(con, GW)
    await register(con, "gw-other")
    a, b = "a" * 64, "b" * 64
    async with con.transaction():
        assert await pin_certificate(con, GW, a) is True
        assert await pin_certificate(con, GW, a) is False
    with pytest.raises(GatewayChangeError, match="not registered"):
        await pin_certificate(con, "gw-nobody", b)
    with pytest.raises(GatewayChangeError, match="another gateway"):
        await pin_certificate(con, "gw-other", a)
    async with con.transaction():
        assert await revoke_certificate(con, GW) == a
    with pytest.raises(GatewayChangeError, match="revoked"):
        await pin_certificate(con, GW, a)
    assert await con.fetchval("SELECT cert_sha256 FROM gateways WHERE gateway_id = $1", GW) is None
