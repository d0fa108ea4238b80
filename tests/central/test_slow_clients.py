"""Slow and greedy clients on the gateway listener, over real TLS on 127.0.0.1 (DESIGN §6):
slowloris heads, trickled bodies, idle and handshake-less connections are cut off in the
configured time, a gateway cannot hold more than its share of connections, and real gateways
keep being served meanwhile."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.app import gateway_app, serve
from suishen.central.listener import ListenerLimits
from suishen.sync import pki

from .hubkit import body, register, scan_row

NOW = dt.datetime.now(dt.UTC)
GOOD, GREEDY = "gw-good", "gw-greedy"
SLACK_S = 1.5  # scheduling on a loaded 2-core machine


class Listener:
    def __init__(self, port: int, layout: pki.PkiLayout) -> None:
        self.port, self.layout = port, layout

    def ctx(self, gateway_id: str) -> ssl.SSLContext:
        return pki.gateway_ssl_context_for(self.layout, gateway_id)

    async def tls(self, gateway_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.ctx(gateway_id), server_hostname="localhost"
        )

    def session(self, gateway_id: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            f"https://localhost:{self.port}",
            connector=aiohttp.TCPConnector(ssl=self.ctx(gateway_id), force_close=True),
        )


Start = Callable[[ListenerLimits], Awaitable[Listener]]


@pytest.fixture
async def start(db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Start]:
    layout = pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_hub(layout.root, now=NOW)
    for gateway_id in (GOOD, GREEDY):
        cert, _ = pki.issue_gateway(layout.root, gateway_id, now=NOW)
        await register(db_pool, gateway_id, cert=cert)
    runners = []

    async def starter(limits: ListenerLimits) -> Listener:
        app = gateway_app(
            bundle_key=ed25519.Ed25519PrivateKey.generate(),
            pool=db_pool,
            bundle_poll_s=60,
            limits=limits,
        )
        runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
        runners.append(runner)
        return Listener(port, layout)

    try:
        yield starter
    finally:
        for runner in runners:
            await runner.cleanup()


async def closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Everything the server sends until it closes the connection."""
    try:
        data = await reader.read()
    except (ConnectionError, ssl.SSLError):
        data = b""
    writer.close()
    return data


async def upload_ok(listener: Listener, seq: int) -> None:
    async with (
        listener.session(GOOD) as client,
        client.post("/v1/ingest", json=body(GOOD, [scan_row(seq)])) as response,
    ):
        assert response.status == 200


async def test_slowloris_heads_are_cut_off_and_gateways_still_served(start: Start) -> None:
    """Three connections with a valid certificate send a request head one byte every 50 ms
    (never finishing); each is closed within header_timeout_s (1 s) of connecting although it
    keeps sending, and a real gateway uploads meanwhile without waiting for them."""
    listener = await start(ListenerLimits(header_timeout_s=1.0, body_timeout_s=5.0))
    head = b"POST /v1/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" * 9

    async def slowloris() -> tuple[float, int]:
        reader, writer = await listener.tls(GREEDY)
        started, sent = time.monotonic(), 0
        try:
            for byte in head:
                if reader.at_eof():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.05)
        except (ConnectionError, ssl.SSLError):
            pass
        await asyncio.wait_for(closed_after(reader, writer), 5)
        return time.monotonic() - started, sent

    attackers = [asyncio.create_task(slowloris()) for _ in range(3)]
    await asyncio.sleep(0.3)
    served = time.monotonic()
    for seq in (1, 2, 3):
        await upload_ok(listener, seq)
    assert time.monotonic() - served < 1.0 + SLACK_S
    for took, sent in await asyncio.gather(*attackers):
        assert sent < len(head)  # cut off mid-head
        assert 0.9 <= took < 1.0 + SLACK_S
        assert sent >= 10  # it was not idle: bytes kept coming


async def test_idle_and_handshakeless_connections_are_closed(start: Start) -> None:
    """A TLS connection that sends nothing, and a TCP connection that never starts its TLS
    handshake, are both closed within header_timeout_s."""
    listener = await start(ListenerLimits(header_timeout_s=1.0))
    started = time.monotonic()
    reader, writer = await listener.tls(GREEDY)
    assert await asyncio.wait_for(closed_after(reader, writer), 5) == b""
    assert time.monotonic() - started < 1.0 + SLACK_S
    started = time.monotonic()
    raw_reader, raw_writer = await asyncio.open_connection("127.0.0.1", listener.port)
    assert await asyncio.wait_for(closed_after(raw_reader, raw_writer), 5) == b""
    assert 0.9 <= time.monotonic() - started < 1.0 + SLACK_S


async def test_trickled_body_gets_408_in_body_timeout(start: Start, db_pool: asyncpg.Pool) -> None:
    """A complete head announcing 2000 bytes, then the body a few bytes at a time: 408 and the
    connection closed within body_timeout_s (1 s); nothing stored."""
    listener = await start(ListenerLimits(header_timeout_s=5.0, body_timeout_s=1.0))
    reader, writer = await listener.tls(GREEDY)
    writer.write(
        b"POST /v1/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000\r\n\r\n{"
    )
    started = time.monotonic()

    async def trickle() -> None:
        try:
            while not reader.at_eof():
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, ssl.SSLError):
            pass

    feeder = asyncio.create_task(trickle())
    answer = await asyncio.wait_for(closed_after(reader, writer), 5)
    feeder.cancel()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
    assert 0.9 <= time.monotonic() - started < 1.0 + SLACK_S
    assert await db_pool.fetchval("SELECT count(*) FROM scans") == 0


async def test_connections_per_gateway_are_capped(start: Start) -> None:
    """With max_connections_per_gateway = 3, a gateway's 4th open connection gets 503 and is
    closed at once; another gateway is not affected; once one closes, a new one is served."""
    listener = await start(ListenerLimits(header_timeout_s=10.0, max_connections_per_gateway=3))
    held = [await listener.tls(GREEDY) for _ in range(3)]
    reader, writer = await listener.tls(GREEDY)
    refused = await asyncio.wait_for(closed_after(reader, writer), 2)
    assert refused.startswith(b"HTTP/1.1 503"), refused[:60]
    assert b"Retry-After: 1" in refused
    await upload_ok(listener, 1)  # another gateway: served
    _, first_writer = held.pop()
    first_writer.close()
    await first_writer.wait_closed()
    await asyncio.sleep(0.2)
    async with (
        listener.session(GREEDY) as client,
        client.post("/v1/ingest", json=body(GREEDY, [scan_row(1)])) as response,
    ):
        assert response.status == 200
    for _, other in held:
        other.close()
