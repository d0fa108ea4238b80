"""QR scanner simulators: a serial scanner on a pty pair, and a TCP line scanner.

Both write what a real scanner writes: ``[prefix] [AIM id] text suffix`` (see
protocol.framing.encode_scan), and record the bytes the host sends them (vendor commands).

- PtyScannerSim: os.openpty(); the driver opens the slave side (``path``, a stable symlink
  when ``link`` is given, like /dev/serial/by-id). ``unplug()`` closes the pty (the driver's
  reads fail, as when a USB scanner is pulled); ``plug()`` makes a new pty and points the
  symlink at it.
- TcpScannerSim: CLIENT mode connects to the gateway (and reconnects while plugged); SERVER
  mode listens for the gateway. ``unplug()`` drops the link (and stops the server / the
  reconnecting); ``plug()`` restores it.

``suishen sim scanner --pty | --tcp-connect HOST:PORT | --tcp-listen PORT [--suffix CRLF]
[--prefix TEXT] [--aim ]Q1] [--interval S] [--text T ...]`` runs one standalone: it prints
where to connect, then sends each --text (or each stdin line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import os
import sys
import termios
import tty
from pathlib import Path
from typing import Any

from suishen.protocol.framing import FramingConfig, Suffix, encode_scan

SEND_TIMEOUT_S = 5.0  # how long send_* waits for a link before giving up


class ScannerWire:
    """How a simulated scanner frames its output."""

    def __init__(
        self,
        *,
        suffix: Suffix = Suffix.CR,
        prefix: bytes = b"",
        aim: str | None = None,
        encoding: str = "utf-8",
    ) -> None:
        idle = 0.1 if suffix is Suffix.NONE else None
        self.config = FramingConfig(suffix=suffix, prefix=prefix, idle_flush_s=idle)
        self.aim = aim
        self.encoding = encoding

    def frame(self, text: str) -> bytes:
        return encode_scan(text, self.config, aim=self.aim, encoding=self.encoding)


# --------------------------------------------------------------------------- pty


class PtyScannerSim:
    """A serial scanner behind a pty pair."""

    def __init__(self, wire: ScannerWire | None = None, *, link: Path | None = None) -> None:
        self.wire = wire or ScannerWire()
        self.link = link
        self.received = bytearray()  # bytes the host wrote to the scanner
        self._master: int | None = None
        self._slave: int | None = None
        self._pts = ""

    @property
    def path(self) -> str:
        """What the driver opens: the symlink if configured, else the pty slave's name."""
        return str(self.link) if self.link is not None else self._pts

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        # Raw from the start: bytes written before the driver configures the port must not
        # be echoed or have CR turned into LF by the line discipline.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pts = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._pts)
            tmp.replace(self.link)
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().add_reader(master, self._on_readable)

    def unplug(self) -> None:
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        if master is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)

    async def send_scan(self, text: str) -> None:
        await self.send_raw(self.wire.frame(text))

    async def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(SEND_TIMEOUT_S):
            while view:
                master = self._master
                if master is None:
                    raise ConnectionError("scanner unplugged")
                try:
                    written = os.write(master, view)
                except BlockingIOError:
                    ready = loop.create_future()
                    loop.add_writer(master, ready.set_result, None)
                    try:
                        await ready
                    finally:
                        loop.remove_writer(master)
                    continue
                view = view[written:]

    def line_settings(self) -> list[Any]:
        """termios attributes of the pty as the host set them (baud rate, parity, ...)."""
        if self._slave is None:
            raise ConnectionError("scanner unplugged")
        return termios.tcgetattr(self._slave)

    def write_blocking(self, data: bytes) -> None:
        """For the standalone CLI (no event loop): write everything, waiting as needed."""
        master = self._master
        if master is None:
            raise ConnectionError("scanner unplugged")
        os.set_blocking(master, True)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(master, view) :]
        finally:
            os.set_blocking(master, False)

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # EIO: the host side is closed; keep the pty, a host may open it again
        if data:
            self.received += data

    async def aclose(self) -> None:
        self.unplug()


# --------------------------------------------------------------------------- TCP


class TcpSimMode(enum.StrEnum):
    CLIENT = "client"  # the scanner connects to the gateway
    SERVER = "server"  # the gateway connects to the scanner


class TcpScannerSim:
    """A TCP line scanner (client or server mode)."""

    def __init__(
        self,
        mode: TcpSimMode,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        wire: ScannerWire | None = None,
        reconnect_s: float = 0.05,
    ) -> None:
        self.mode = mode
        self.host = host
        self.port = port  # SERVER: the bound port after start() (0 picks one)
        self.wire = wire or ScannerWire(suffix=Suffix.CRLF)
        self.reconnect_s = reconnect_s
        self.received = bytearray()
        self._writers: set[asyncio.StreamWriter] = set()
        self._peer_event = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._plugged = False

    async def start(self) -> None:
        await self.plug()

    async def plug(self) -> None:
        if self._plugged:
            return
        self._plugged = True
        if self.mode is TcpSimMode.SERVER:
            self._server = await asyncio.start_server(
                self._on_client, self.host, self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]
        else:
            self._task = asyncio.create_task(self._client_loop())

    async def unplug(self) -> None:
        self._plugged = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._writers.clear()
        self._peer_event.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def aclose(self) -> None:
        await self.unplug()

    async def wait_peer(self, timeout_s: float = SEND_TIMEOUT_S) -> None:
        async with asyncio.timeout(timeout_s):
            await self._peer_event.wait()

    async def send_scan(self, text: str) -> None:
        await self.send_raw(self.wire.frame(text))

    async def send_raw(self, data: bytes) -> None:
        """Write to every connected peer (waits for one to be connected)."""
        await self.wait_peer()
        for writer in list(self._writers):
            writer.write(data)
        for writer in list(self._writers):
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer)

    async def _client_loop(self) -> None:
        while self._plugged:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(self.reconnect_s)
                continue
            await self._serve(reader, writer)
            await asyncio.sleep(self.reconnect_s)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._peer_event.set()
        try:
            while data := await reader.read(4096):
                self.received += data
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            if not self._writers:
                self._peer_event.clear()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# --------------------------------------------------------------------------- CLI


def add_cli(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "scanner",
        help="a QR scanner on a pty or TCP",
        description="Simulate a QR scanner: sends each --text (or each stdin line) as a scan.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--pty", action="store_true", help="serial scanner on a pty (prints its path)"
    )
    where.add_argument(
        "--tcp-connect", metavar="HOST:PORT", help="connect to a gateway listening there"
    )
    where.add_argument("--tcp-listen", metavar="PORT", type=int, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--suffix", default="CR", help="CR, LF, CRLF or NONE (default CR)")
    parser.add_argument("--prefix", default="", help="text sent before each scan")
    parser.add_argument("--aim", default=None, help="AIM symbology id to send, e.g. ]Q1")
    parser.add_argument("--link", type=Path, default=None, help="--pty: also make this symlink")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between scans")
    parser.add_argument("--text", action="append", default=[], help="a scan to send (repeatable)")
    parser.set_defaults(handler=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    suffix = Suffix.parse(args.suffix)
    if suffix is Suffix.ANY:
        suffix = Suffix.CRLF
    wire = ScannerWire(suffix=suffix, prefix=args.prefix.encode(), aim=args.aim)
    return asyncio.run(_cli_main(args, wire))


async def _cli_main(args: argparse.Namespace, wire: ScannerWire) -> int:
    sim: PtyScannerSim | TcpScannerSim
    if args.pty:
        sim = PtyScannerSim(wire, link=args.link)
        sim.plug()
        print(sim.path, flush=True)
    elif args.tcp_connect:
        host, _, port = args.tcp_connect.rpartition(":")
        sim = TcpScannerSim(TcpSimMode.CLIENT, host=host or "127.0.0.1", port=int(port), wire=wire)
        await sim.start()
        print(f"connecting to {host}:{port}", flush=True)
    else:
        sim = TcpScannerSim(TcpSimMode.SERVER, port=args.tcp_listen, wire=wire)
        await sim.start()
        print(f"listening on 127.0.0.1:{sim.port}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        texts = list(args.text)
        if texts:
            for i, text in enumerate(texts):
                if i and args.interval:
                    await asyncio.sleep(args.interval)
                await sim.send_scan(text)
            await asyncio.sleep(0.2)  # let the last bytes leave before closing
        else:
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                text = line.rstrip("\r\n")
                if text:
                    await sim.send_scan(text)
                    if args.interval:
                        await asyncio.sleep(args.interval)
    except (ConnectionError, TimeoutError) as exc:
        print(f"scanner simulator: {exc}", file=sys.stderr)
        return 1
    finally:
        await sim.aclose()
    return 0
