"""The gateway listener over real mutual TLS on 127.0.0.1: ingest, alerts, bundles, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from multidict import CIMultiDict

from suishen.central.app import gateway_app, serve
from suishen.central.store.lists import roster_add, trust_add, watchlist_add, watchlist_remove
from suishen.gateway.lists import Roster, Watchlist
from suishen.protocol.bundles import open_bundle
from suishen.protocol.trust import trusted_key_from_public_key
from suishen.sync import pki
from suishen.sync.wire import MAX_ROWS

from .hubkit import OTHER_SITE, alert_row, body, person, pin, register, scan_row

NOW = dt.datetime.now(dt.UTC)
SMALL_BODY = 256 * 1024


class Hub:
    """A running gateway listener and what the tests need to talk to it."""

    def __init__(
        self, url: str, layout: pki.PkiLayout, key: ed25519.Ed25519PrivateKey, pool: asyncpg.Pool
    ) -> None:
        self.url = url
        self.layout = layout
        self.key = key
        self.pool = pool

    @contextlib.asynccontextmanager
    async def client(self, gateway_id: str | None) -> AsyncIterator[aiohttp.ClientSession]:
        """A client presenting a fresh certificate for ``gateway_id`` (None: none), pinned at
        the hub as `suishen hub gateway add` would when the gateway is registered."""
        if gateway_id is None:
            ctx = ssl.create_default_context(cafile=str(self.layout.ca_cert))
        else:
            cert, _ = pki.issue_gateway(self.layout.root, gateway_id, now=NOW)
            if await self.pool.fetchval("SELECT 1 FROM gateways WHERE gateway_id = $1", gateway_id):
                await pin(self.pool, gateway_id, cert)
            ctx = pki.gateway_ssl_context_for(self.layout, gateway_id)
        connector = aiohttp.TCPConnector(ssl=ctx, force_close=True)
        async with aiohttp.ClientSession(self.url, connector=connector) as session:
            yield session


@pytest.fixture
def layout(tmp_path: Path) -> pki.PkiLayout:
    layout = pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_hub(layout.root, now=NOW)
    return layout


@pytest.fixture
async def hub(db_pool: asyncpg.Pool, layout: pki.PkiLayout) -> AsyncIterator[Hub]:
    key = ed25519.Ed25519PrivateKey.generate()
    app = gateway_app(bundle_key=key, pool=db_pool, max_body_bytes=SMALL_BODY, bundle_poll_s=60)
    runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
    try:
        yield Hub(f"https://localhost:{port}", layout, key, db_pool)
    finally:
        await runner.cleanup()


async def count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_upload_over_mtls_is_idempotent(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A registered gateway uploads over mutual TLS; the answer follows wire.py, and the same
    batch posted again inserts nothing and answers the same high water."""
    await register(db_pool, "gw-a")
    rows = [scan_row(1), scan_row(2), scan_row(3, direction="up")]
    async with hub.client("gw-a") as client:
        for inserted, duplicates in ((2, 0), (0, 2)):
            async with client.post("/v1/ingest", json=body("gw-a", rows)) as response:
                assert response.status == 200
                answer = await response.json()
            assert answer["high_water"] == 3
            assert (answer["inserted"], answer["duplicates"]) == (inserted, duplicates)
            assert [r["seq"] for r in answer["rejected"]] == [3]
    assert await count(db_pool, "scans") == 2


async def test_client_without_certificate_is_refused(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A client that trusts the hub but presents no certificate does not get through the TLS
    handshake, and nothing is stored."""
    await register(db_pool, "gw-a")
    async with hub.client(None) as client:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with client.post("/v1/ingest", json=body("gw-a", [scan_row(1)])) as response:
                await response.read()
    assert await count(db_pool, "scans") == 0


async def test_certificate_of_gateway_a_cannot_post_for_gateway_b(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """Gateway A's certificate with a batch naming gateway B is refused 403 (on both lanes),
    and nothing is stored for either."""
    await register(db_pool, "gw-a")
    await register(db_pool, "gw-b")
    async with hub.client("gw-a") as client:
        async with client.post("/v1/ingest", json=body("gw-b", [scan_row(1)])) as response:
            assert response.status == 403
            answer = await response.json()
            assert "gw-a" in answer["error"]
            assert answer["row"] is None
        async with client.post("/v1/alerts", json=body("gw-b", [alert_row(2, 1)])) as response:
            assert response.status == 403
    assert await count(db_pool, "scans") == 0
    assert await count(db_pool, "alerts") == 0


async def test_unknown_or_disabled_gateway_is_refused(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A valid certificate for a gateway the hub has not registered, or has disabled, gets 403
    on uploads and on bundles."""
    await register(db_pool, "gw-off", enabled=False)
    for gateway_id in ("gw-new", "gw-off"):
        async with hub.client(gateway_id) as client:
            async with client.post("/v1/ingest", json=body(gateway_id, [])) as response:
                assert response.status == 403
            async with client.get("/v1/bundles/watchlist") as response:
                assert response.status == 403


async def test_oversized_batches_are_refused(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A body over the listener's byte limit, and a batch over MAX_ROWS rows, are refused 413
    and store nothing."""
    await register(db_pool, "gw-a")
    big = body("gw-a", [scan_row(1, masked_name="x" * 100) for _ in range(1)])
    big["rows"] = [dict(big["rows"][0], seq=n) for n in range(1, 900)]  # ~500 KB
    async with hub.client("gw-a") as client:
        async with client.post("/v1/ingest", json=big) as response:
            assert response.status == 413
        many = body("gw-a", [scan_row(n) for n in range(1, MAX_ROWS + 2)])
        many["rows"] = [{"seq": r["seq"]} for r in many["rows"]]  # small body, too many rows
        async with client.post("/v1/ingest", json=many) as response:
            assert response.status == 413
            assert "at most" in (await response.json())["error"]
    assert await count(db_pool, "scans") == 0


async def test_not_json_and_duplicate_seq_are_400_naming_the_row(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """A body that is not JSON is a 400; a batch with one seq twice is a 400 naming the row."""
    await register(db_pool, "gw-a")
    async with hub.client("gw-a") as client:
        async with client.post("/v1/ingest", data=b"{not json") as response:
            assert response.status == 400
        twice = body("gw-a", [scan_row(1), scan_row(1)])
        async with client.post("/v1/ingest", json=twice) as response:
            assert response.status == 400
            assert (await response.json())["row"] == 1


async def test_alert_fast_lane_deduplicates(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """POST /v1/alerts stores an alert once however often it is sent, refuses other row kinds
    naming the row, and does not move the high water."""
    await register(db_pool, "gw-a")
    async with hub.client("gw-a") as client:
        for stored in (1, 0):
            async with client.post("/v1/alerts", json=body("gw-a", [alert_row(5, 4)])) as resp:
                assert resp.status == 200
                assert await resp.json() == {"stored": stored}
        mixed = body("gw-a", [alert_row(6, 4), scan_row(7)])
        async with client.post("/v1/alerts", json=mixed) as response:
            assert response.status == 400
            assert (await response.json())["row"] == 1
    assert await count(db_pool, "alerts") == 1
    assert await db_pool.fetchval("SELECT high_water FROM gateways") == 0


async def _get(
    client: aiohttp.ClientSession, path: str, **kwargs: object
) -> tuple[int, bytes, CIMultiDict[str]]:
    async with client.get(path, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.read(), CIMultiDict(response.headers)


async def test_watchlist_add_reaches_a_long_poller_within_a_second(
    hub: Hub, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    """A gateway long-polling the watchlist receives the new signed version well within a
    second of `watchlist add` committing on another connection (NOTIFY), verifiable with the
    pinned key and holding the entry."""
    await register(db_pool, "gw-a")
    async with hub.client("gw-a") as client:
        status, _, headers = await _get(client, "/v1/bundles/watchlist?after=0&wait=0")
        assert status == 304
        assert "ETag" not in headers
        poll = asyncio.create_task(_get(client, "/v1/bundles/watchlist?after=0&wait=20"))
        await asyncio.sleep(0.3)  # the long-poll is waiting
        assert not poll.done()
        con = await asyncpg.connect(db_dsn)  # another connection, as the CLI would use
        try:
            started = time.monotonic()
            await watchlist_add(con, person(1), level="deny", route="police", reason="wanted")
        finally:
            await con.close()
        status, data, headers = await asyncio.wait_for(poll, 5)
        elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed < 1.0
    assert headers["Content-Type"] == "application/cose"
    assert headers["X-Bundle-Version"] == "1"
    assert headers["ETag"] == '"1"'
    bundle = open_bundle(data, pinned_key=hub.key.public_key(), kind="watchlist")
    watchlist = Watchlist.from_body(bundle.body)
    entry = watchlist.entry(person(1))
    assert entry is not None
    assert (entry.level, entry.route, entry.reason) == ("deny", "police", "wanted")


async def test_etag_and_304(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A gateway holding the current version gets 304 with the ETag (by If-None-Match or by
    after=), after the wait it asked for; an older version gets the new bundle at once; a
    removal makes a newer version that leaves the entry out."""
    await register(db_pool, "gw-a")
    async with db_pool.acquire() as con:
        await watchlist_add(con, person(1), level="notify", route="staff", reason="check")
    async with hub.client("gw-a") as client:
        status, _, headers = await _get(client, "/v1/bundles/watchlist")
        assert (status, headers["ETag"]) == (200, '"1"')
        status, _, headers = await _get(
            client, "/v1/bundles/watchlist", headers={"If-None-Match": '"1"'}
        )
        assert (status, headers["ETag"]) == (304, '"1"')
        started = time.monotonic()
        status, _, _ = await _get(client, "/v1/bundles/watchlist?after=1&wait=0.4")
        assert status == 304
        assert 0.35 < time.monotonic() - started < 5
        async with db_pool.acquire() as con:
            assert await watchlist_remove(con, person(1)) == 2
            assert await watchlist_remove(con, person(1)) is None
        status, data, headers = await _get(client, "/v1/bundles/watchlist?after=1&wait=5")
        assert (status, headers["X-Bundle-Version"]) == (200, "2")
        bundle = open_bundle(data, pinned_key=hub.key.public_key(), kind="watchlist", newer_than=1)
        assert person(1) not in Watchlist.from_body(bundle.body)
        status, _, _ = await _get(client, "/v1/bundles/nonsense")
        assert status == 404


async def test_roster_is_per_site_and_trust_carries_entries(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """The roster a gateway receives holds its own site's workers only; the trust bundle holds
    the trusted keys' entries, readable by the gateway's trust-list parser."""
    await register(db_pool, "gw-a", kind="construction")
    await register(db_pool, "gw-b", OTHER_SITE, kind="construction")
    issuer = ed25519.Ed25519PrivateKey.generate()
    entry = trusted_key_from_public_key(issuer.public_key(), issuer="CN-SH").to_json()
    async with db_pool.acquire() as con:
        await roster_add(con, "site-a", person(1), masked_name="张*明")
        await roster_add(con, OTHER_SITE, person(2))
        kid, version = await trust_add(con, entry)
    assert version == 1
    async with hub.client("gw-a") as client:
        status, data, _ = await _get(client, "/v1/bundles/roster")
        assert status == 200
        bundle = open_bundle(data, pinned_key=hub.key.public_key(), kind="roster")
        roster = Roster.from_body(bundle.body)
        assert len(roster) == 1
        assert roster.get(person(1), "site-a", time.time()) is not None
        status, data, _ = await _get(client, "/v1/bundles/trust")
        trust = open_bundle(data, pinned_key=hub.key.public_key(), kind="trust").body
        assert [k["kid"] for k in trust["keys"]] == [kid]
