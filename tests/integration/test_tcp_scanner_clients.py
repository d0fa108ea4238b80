"""Slow, idle and unwanted clients at the TCP line scanner in LISTEN mode, over loopback:
idle connections cannot lock the real scanner out, silent connections are dropped after the
idle timeout, and only allowed peers are kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from suishen.drivers.base import DeviceConfigError, DeviceState
from suishen.drivers.sim.scanner import ScannerWire, TcpScannerSim, TcpSimMode
from suishen.drivers.tcp_scanner import TcpMode, TcpScanner, TcpScannerConfig
from suishen.protocol.framing import FramingConfig, Suffix
from tests.integration.suite_scan_source import ScanCollector, wait_state, wait_until

Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def listening(**settings: object) -> AsyncIterator[TcpScanner]:
    config = TcpScannerConfig(
        device_id="lane1/scanner",
        mode=TcpMode.LISTEN,
        framing=FramingConfig(suffix=Suffix.CRLF),
        **settings,  # type: ignore[arg-type]
    )
    source = TcpScanner(config)
    await source.start()
    try:
        yield source
    finally:
        await source.aclose()


async def connect(port: int, *, source_host: str = "127.0.0.1") -> Client:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source_host, 0))


async def closed_by_peer(client: Client, timeout_s: float = 3.0) -> bool:
    """True when the gateway closed this connection (EOF or reset) within the timeout."""
    reader, _writer = client
    try:
        async with asyncio.timeout(timeout_s):
            return await reader.read(1) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def close_all(clients: list[Client]) -> None:
    for _reader, writer in clients:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def real_scanner(port: int) -> TcpScannerSim:
    sim = TcpScannerSim(
        TcpSimMode.CLIENT, port=port, wire=ScannerWire(suffix=Suffix.CRLF), reconnect_s=0.02
    )
    await sim.start()
    return sim


async def test_idle_connections_do_not_lock_the_real_scanner_out() -> None:
    """Eight connections that send nothing fill max_clients (8); the real scanner connecting
    next is accepted (the connection idle longest is evicted) and its scan arrives."""
    async with listening(max_clients=8, idle_timeout_s=0) as source:
        idle = [await connect(source.port) for _ in range(8)]
        await wait_until(lambda: source.connected_peers == 8)
        sim = await real_scanner(source.port)
        collector = ScanCollector(source)
        collector.start()
        try:
            await sim.wait_peer()
            await sim.send_scan("REAL-SCANNER")
            assert (await collector.next()).text == "REAL-SCANNER"
            assert await closed_by_peer(idle[0])  # the oldest idle connection went
            assert source.connected_peers == 8
            assert source.state is DeviceState.CONNECTED
        finally:
            await collector.aclose()
            await sim.aclose()
            await close_all(idle)


async def test_slow_clients_do_not_lock_the_real_scanner_out() -> None:
    """Eight clients that trickle one byte of a never-ending line every 50 ms hold every
    slot; the real scanner is still let in (evicting the one quiet longest), its scan
    arrives, and the tricklers' half lines never become scans."""
    async with listening(max_clients=8, idle_timeout_s=0) as source:
        slow = [await connect(source.port) for _ in range(8)]
        await wait_until(lambda: source.connected_peers == 8)
        stop = asyncio.Event()

        async def trickle() -> None:
            while not stop.is_set():
                for _reader, writer in slow:
                    if not writer.is_closing():
                        writer.write(b"A")
                await asyncio.sleep(0.05)

        trickler = asyncio.create_task(trickle())
        collector = ScanCollector(source)
        collector.start()
        sim = await real_scanner(source.port)
        try:
            await sim.wait_peer()
            await sim.send_scan("REAL-SCANNER")
            assert (await collector.next()).text == "REAL-SCANNER"
            assert source.connected_peers == 8
        finally:
            stop.set()
            await trickler
            await collector.aclose()
            await sim.aclose()
            await close_all(slow)


async def test_a_silent_connection_is_dropped_after_the_idle_timeout() -> None:
    """idle_timeout_s = 0.3: a connection that sends nothing is closed by the gateway within
    about a second and the device goes DISCONNECTED; one that scans every 100 ms stays."""
    async with listening(idle_timeout_s=0.3) as source:
        silent = await connect(source.port)
        await wait_state(source, DeviceState.CONNECTED)
        assert await closed_by_peer(silent, timeout_s=2.0)
        await wait_state(source, DeviceState.DISCONNECTED)
        busy = await connect(source.port)
        collector = ScanCollector(source)
        collector.start()
        try:
            for i in range(10):
                busy[1].write(f"SCAN-{i}\r\n".encode())
                assert (await collector.next()).text == f"SCAN-{i}"
                await asyncio.sleep(0.1)
            assert source.connected_peers == 1
            assert source.state is DeviceState.CONNECTED
        finally:
            await collector.aclose()
            await close_all([silent, busy])


async def test_only_allowed_peers_are_kept() -> None:
    """allowed_peers = 127.0.0.2/32: connections from 127.0.0.1 are closed at once (one log
    line for five attempts, with the count of the rest), never counted as the scanner; a
    scanner connecting from 127.0.0.2 is kept and its scan arrives."""
    async with listening(allowed_peers=("127.0.0.2/32",)) as source:
        collector = ScanCollector(source)
        collector.start()
        clients: list[Client] = []
        try:
            with capture_logs() as logs:
                strangers = [await connect(source.port) for _ in range(5)]
                clients += strangers
                for stranger in strangers:
                    assert await closed_by_peer(stranger, timeout_s=1.0)
            refused = [e for e in logs if e["event"].startswith("scanner connection refused")]
            assert len(refused) == 1 and refused[0]["peer"] == "127.0.0.1"
            assert source.refused == 5
            assert source.state is not DeviceState.CONNECTED
            allowed = await connect(source.port, source_host="127.0.0.2")
            clients.append(allowed)
            await wait_state(source, DeviceState.CONNECTED)
            allowed[1].write(b"FROM-ALLOWED\r\n")
            assert (await collector.next()).text == "FROM-ALLOWED"
        finally:
            await collector.aclose()
            await close_all(clients)


def test_allowed_peers_must_be_addresses_or_networks() -> None:
    """An allowed peer that is not an IP address or CIDR network is an impossible setting."""
    with pytest.raises(DeviceConfigError):
        TcpScannerConfig(device_id="x", mode=TcpMode.LISTEN, allowed_peers=("scanner.local",))
