"""Scan-to-open latency through the real drivers, against the bare transport round trips.

For each of two wirings, 1000 scans, one at a time, with an allow-all decision:
- serial: pty scanner simulator -> SerialScanner (pyserial-asyncio-fast) -> ModbusGate (TCP)
  -> Modbus turnstile simulator;
- tcp+uhppote: TCP line scanner simulator -> TcpScanner -> UhppoteGate (UDP) -> controller
  simulator.
Latency = from the simulator having written the code's last byte to the turnstile simulator
having decoded the open command (both sides stamp time.monotonic(), in one process).
Floors, measured in the same run: a bare pty round trip and a bare loopback TCP round trip
(asyncio, the same event loop). The floor of a wiring is the sum of the round trips of the two
transports it crosses (an upper bound on its two one-way legs). Target: p99 <= floor + 2 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import tty
from collections.abc import Awaitable, Callable

from bench.common import print_table, write_results
from suishen.drivers.modbus_gate import ModbusGate
from suishen.drivers.serial_scanner import SerialScanner, SerialScannerConfig
from suishen.drivers.sim.scanner import PtyScannerSim, TcpScannerSim, TcpSimMode
from suishen.drivers.sim.turnstile import TurnstileSimulator
from suishen.drivers.sim.uhppote import UhppoteSimulator
from suishen.drivers.tcp_scanner import TcpMode, TcpScanner, TcpScannerConfig
from suishen.drivers.uhppote import UhppoteGate, UhppoteLink
from suishen.logs import configure as configure_logs
from suishen.protocol.framing import FramingConfig, Suffix

SCANS = 1000
CODE = "SSC1:" + "6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N IOP-IH$NUJ8SL8" * 5  # ~300 chars


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, samples_s: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples_s]
    return {
        "name": name,
        "p50_us": statistics.median(us),
        "p99_us": percentile(us, 0.99),
        "max_us": max(us),
    }


async def pty_round_trip(n: int) -> list[float]:
    """Write on the master, read on the slave, echo back, read on the master."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    loop = asyncio.get_running_loop()
    for fd in (master, slave):
        os.set_blocking(fd, False)
    echo_done: asyncio.Future[None] | None = None

    def on_slave() -> None:
        os.write(slave, os.read(slave, 4096))

    def on_master() -> None:
        os.read(master, 4096)
        if echo_done is not None and not echo_done.done():
            echo_done.set_result(None)

    loop.add_reader(slave, on_slave)
    loop.add_reader(master, on_master)
    samples = []
    try:
        for _ in range(n):
            echo_done = loop.create_future()
            start = time.monotonic()
            os.write(master, b"x" * 64 + b"\r")
            await echo_done
            samples.append(time.monotonic() - start)
    finally:
        loop.remove_reader(slave)
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
    return samples


async def tcp_round_trip(n: int) -> list[float]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    for _ in range(n):
        start = time.monotonic()
        writer.write(b"x" * 64 + b"\r")
        await reader.read(4096)
        samples.append(time.monotonic() - start)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return samples


async def drive(
    source, gate, send: Callable[[], Awaitable[float]], opens: Callable[[], list[float]]
) -> list[float]:
    """Allow-all lane: every scan opens the gate; latency per scan from the sims' stamps."""

    async def lane() -> None:
        async for _scan in source.scans():
            await gate.open(pulse_ms=50)

    task = asyncio.create_task(lane())
    samples = []
    try:
        for i in range(SCANS):
            sent = await send()
            async with asyncio.timeout(2.0):
                while len(opens()) <= i:
                    await asyncio.sleep(0)
            samples.append(opens()[i] - sent)
            await asyncio.sleep(0.001)
    finally:
        task.cancel()
    return samples


async def wait_connected(*devices, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while any(d.state.value != "connected" for d in devices):
            await asyncio.sleep(0.01)


async def serial_modbus() -> list[float]:
    scanner_sim = PtyScannerSim()
    scanner_sim.plug()
    turnstile = TurnstileSimulator(delay_s=0.01, pass_probability=1.0)
    await turnstile.start()
    scanner = SerialScanner(
        SerialScannerConfig(
            device_id="bench-scanner",
            url=scanner_sim.path,
            baudrate=115200,
            framing=FramingConfig(suffix=Suffix.CR),
        )
    )
    gate = ModbusGate(device_id="bench-gate", url=turnstile.url)
    await scanner.start()
    await gate.start()
    await wait_connected(scanner, gate)
    frame = scanner_sim.wire.frame(CODE)

    async def send() -> float:
        await scanner_sim.send_raw(frame)
        return time.monotonic()

    try:
        return await drive(scanner, gate, send, lambda: turnstile.open_times)
    finally:
        await scanner.aclose()
        await gate.aclose()
        await turnstile.aclose()
        await scanner_sim.aclose()


async def tcp_uhppote() -> list[float]:
    controller = UhppoteSimulator(passage_delay_s=0.01)
    await controller.start()
    scanner = TcpScanner(TcpScannerConfig(device_id="bench-tcp", mode=TcpMode.LISTEN))
    await scanner.start()
    scanner_sim = TcpScannerSim(TcpSimMode.CLIENT, port=scanner.port)
    await scanner_sim.start()
    link = UhppoteLink(serial=controller.serial, address=controller.address)
    gate = UhppoteGate(link, door=1)
    await link.start()
    await gate.start()
    await scanner_sim.wait_peer()
    await wait_connected(scanner, gate)
    frame = scanner_sim.wire.frame(CODE)

    async def send() -> float:
        await scanner_sim.send_raw(frame)
        return time.monotonic()

    try:
        return await drive(scanner, gate, send, lambda: [o.received_mono for o in controller.opens])
    finally:
        await gate.aclose()
        await link.aclose()
        await scanner.aclose()
        await scanner_sim.aclose()
        await controller.stop()


async def run() -> dict:
    pty_rtt = summary("bare pty round trip", await pty_round_trip(SCANS))
    tcp_rtt = summary("bare loopback TCP round trip", await tcp_round_trip(SCANS))
    serial = summary("pty scanner -> Modbus TCP open", await serial_modbus())
    uhppote = summary("TCP scanner -> UHPPOTE UDP open", await tcp_uhppote())
    serial["floor_p99_us"] = pty_rtt["p99_us"] + tcp_rtt["p99_us"]
    uhppote["floor_p99_us"] = 2 * tcp_rtt["p99_us"]
    for path in (serial, uhppote):
        path["target_p99_us"] = path["floor_p99_us"] + 2000
        path["met"] = path["p99_us"] <= path["target_p99_us"]
    return {"floors": [pty_rtt, tcp_rtt], "paths": [serial, uhppote]}


def main() -> dict:
    configure_logs("warning")
    results = asyncio.run(run())
    rows = [(f["name"], f["p50_us"], f["p99_us"], "", "", "") for f in results["floors"]]
    rows += [
        (
            p["name"],
            p["p50_us"],
            p["p99_us"],
            p["floor_p99_us"],
            p["target_p99_us"],
            "yes" if p["met"] else "NO",
        )
        for p in results["paths"]
    ]
    print_table(
        f"devices: scan last byte -> open command received, {SCANS} scans (microseconds)",
        ("path", "p50 us", "p99 us", "floor p99 us", "target p99 us", "met"),
        rows,
    )
    path = write_results("devices", {"scans": SCANS, **results})
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
