"""The fault-injecting proxy itself, against a loopback echo server (plain TCP and mutual TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from suishen.sync.pki import gateway_ssl_context_for, hub_ssl_context_for, init_ca, issue_gateway
from suishen.sync.pki import issue_hub as issue_hub_cert
from tests.faults.proxy import HOST, FaultProxy

QUIET_S = 0.3  # "nothing arrives" is checked over this long


class EchoServer:
    """Echoes every byte back; counts connections."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def echo_server(ssl_ctx=None) -> AsyncIterator[EchoServer]:
    echo = EchoServer()
    echo.server = await asyncio.start_server(echo.serve, HOST, 0, ssl=ssl_ctx)
    try:
        yield echo
    finally:
        await echo.aclose()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    async with echo_server() as server:
        yield server


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(echo.port) as fault_proxy:
        yield fault_proxy


@contextlib.asynccontextmanager
async def client(
    port: int, **kwargs
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(HOST, port, **kwargs)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(2):
        return await reader.readexactly(len(data))


async def test_forwards_both_ways_and_counts(proxy: FaultProxy, echo: EchoServer) -> None:
    """Bytes go through unchanged in both directions, large writes included, and the
    counters see them."""
    big = bytes(range(256)) * 4096  # 1 MiB, more than any socket buffer
    async with client(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"hello") == b"hello"
        assert await roundtrip(reader, writer, big) == big
        assert proxy.active == 1
    assert proxy.accepted == 1
    assert echo.connections == 1
    assert proxy.bytes_up == proxy.bytes_down == 5 + len(big)


async def test_drop_resets_open_connections_and_accepts_new_ones(proxy: FaultProxy) -> None:
    """drop() cuts every open connection with a reset; the next connection works."""
    async with client(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"a") == b"a"
        assert await proxy.drop() == 1
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            async with asyncio.timeout(2):
                await reader.readexactly(1)
    assert proxy.active == 0
    assert proxy.dropped == 1
    async with client(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"b") == b"b"


async def test_refuse_until_resume_on_the_same_port(proxy: FaultProxy) -> None:
    """refuse() drops open connections and makes new ones fail with ECONNREFUSED;
    resume() listens again on the same port."""
    port = proxy.port
    async with client(port) as (reader, writer):
        assert await roundtrip(reader, writer, b"x") == b"x"
        await proxy.refuse()
        assert not proxy.listening
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            async with asyncio.timeout(2):
                await reader.readexactly(1)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)
    await proxy.resume()
    assert proxy.port == port
    async with client(port) as (reader, writer):
        assert await roundtrip(reader, writer, b"y") == b"y"


async def test_stall_holds_bytes_and_keeps_the_connection(proxy: FaultProxy) -> None:
    """While stalled nothing is forwarded, the connection stays open (no EOF, no reset), and
    new connections are accepted but held; resume() delivers everything that was held."""
    async with client(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"before") == b"before"
        proxy.stall()
        writer.write(b"during")
        await writer.drain()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await reader.read(1)
        assert not reader.at_eof()
        async with client(proxy.port) as (reader2, writer2):
            writer2.write(b"new")
            await writer2.drain()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(QUIET_S):
                    await reader2.read(1)
            assert proxy.active == 2
            await proxy.resume()
            async with asyncio.timeout(2):
                assert await reader.readexactly(6) == b"during"
                assert await reader2.readexactly(3) == b"new"


async def test_stall_down_only_delivers_requests_but_holds_answers(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    """stall(up=False) lets the client's bytes reach the target (which acts on them) while
    the answers are held: the lost-acknowledgement fault.  resume() releases them."""
    async with client(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"1") == b"1"
        proxy.stall(up=False)
        writer.write(b"request")
        await writer.drain()
        async with asyncio.timeout(2):
            while proxy.bytes_up < 1 + len(b"request"):  # noqa: ASYNC110 - polls a counter
                await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await reader.read(1)
        assert proxy.bytes_down == 1
        await proxy.resume()
        async with asyncio.timeout(2):
            assert await reader.readexactly(7) == b"request"


async def test_stall_after_trips_on_the_byte_count(proxy: FaultProxy) -> None:
    """A trap set for N bytes lets them through (and the chunk that crossed N), then holds
    everything after; its event says when it tripped; resume() delivers the rest."""
    async with client(proxy.port) as (reader, writer):
        tripped = proxy.stall_after(4, down=False)
        assert await roundtrip(reader, writer, b"ab") == b"ab"
        assert not tripped.is_set()
        assert await roundtrip(reader, writer, b"cd") == b"cd"
        async with asyncio.timeout(2):
            await tripped.wait()
        assert proxy.stalled
        writer.write(b"held")
        await writer.drain()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await reader.read(1)
        await proxy.resume()
        async with asyncio.timeout(2):
            assert await reader.readexactly(4) == b"held"


async def test_stall_after_can_hold_only_the_answers(proxy: FaultProxy) -> None:
    """A trap with up=False lets the request that trips it reach the target and holds what
    comes back from then on (the answer to a large upload)."""
    async with client(proxy.port) as (reader, writer):
        tripped = proxy.stall_after(8, up=False)
        writer.write(b"big request")
        await writer.drain()
        async with asyncio.timeout(2):
            await tripped.wait()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await reader.read(1)
        assert proxy.bytes_up == len(b"big request")
        await proxy.resume()
        async with asyncio.timeout(2):
            assert await reader.readexactly(11) == b"big request"


async def test_stall_after_counts_per_connection(proxy: FaultProxy) -> None:
    """The trap counts bytes per connection: small amounts on several connections (TLS
    handshakes, say) do not trip it; one connection carrying enough does."""
    tripped = proxy.stall_after(4, down=False)
    async with client(proxy.port) as (r1, w1), client(proxy.port) as (r2, w2):
        assert await roundtrip(r1, w1, b"abc") == b"abc"
        assert await roundtrip(r2, w2, b"abc") == b"abc"
        assert not tripped.is_set()
        assert await roundtrip(r2, w2, b"d") == b"d"
        assert tripped.is_set()


async def test_target_down_resets_the_client(echo: EchoServer) -> None:
    """With nothing listening behind the proxy, a client's connection is reset at once, as
    through a middlebox whose backend refused."""
    async with FaultProxy(echo.port) as proxy:
        await echo.aclose()
        async with client(proxy.port) as (reader, _writer):
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                async with asyncio.timeout(2):
                    await reader.readexactly(1)
        assert proxy.active == 0


async def test_mutual_tls_passes_through_untouched(tmp_path: Path) -> None:
    """A TLS session with client certificates (the gateway-to-hub set-up) works through the
    proxy: the proxy only moves bytes, so certificate checks happen end to end."""
    now = dt.datetime.now(dt.UTC)
    layout = init_ca(tmp_path / "pki", now=now)
    issue_hub_cert(layout.root, now=now)
    issue_gateway(layout.root, "gw-1", now=now)
    async with (
        echo_server(hub_ssl_context_for(layout)) as tls_echo,
        FaultProxy(tls_echo.port) as proxy,
        client(
            proxy.port, ssl=gateway_ssl_context_for(layout, "gw-1"), server_hostname="127.0.0.1"
        ) as (reader, writer),
    ):
        assert await roundtrip(reader, writer, b"over tls") == b"over tls"
        assert proxy.bytes_up > len(b"over tls")  # the handshake went through it too
