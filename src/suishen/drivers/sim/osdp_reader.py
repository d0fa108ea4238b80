"""An OSDP reader simulator: libosdp's PeripheralDevice (PD) on a pty or on loopback TCP.

It is a real OSDP PD (libosdp does the protocol, including the secure channel with the SCBK
given), behind a real byte link:

- ``OsdpReaderSim.on_pty(link=...)``: os.openpty(); the CP opens ``sim.port`` (the slave
  path, or a stable symlink ``link`` to it, like /dev/serial/by-id);
- ``OsdpReaderSim.on_tcp(port=0)``: listens on 127.0.0.1 for one CP (a serial-to-TCP
  converter in front of a reader); the CP opens ``sim.port`` (``socket://127.0.0.1:N``).

What it does, in-process (thread-safe; tests and the demo drive it):

- ``present_card(card_number, fmt)`` / ``present_wiegand_bits(data, bits)`` /
  ``present_raw(data)``: a card read (raw data of 1..64 bytes; more raises OsdpFieldError
  before libosdp sees it);
- records every LED, buzzer and output command it receives (``received``, ``count(kind)``),
  each with its time.monotonic() of arrival;
- an input (number 0) that reports a passage after an output pulse: active after
  ``passage_delay_s`` with probability ``passage_probability``, inactive 100 ms later;
- ``stop()`` / ``start()``: power the reader off and on (a restart: fresh libosdp state);
  ``unplug()`` / ``plug()``: pull the cable (close the pty and make a new one behind the
  symlink, or stop listening and drop the client); ``stall(True)``: stop answering.

``suishen sim osdp --pty | --tcp-listen PORT [--address 101] [--scbk HEX]`` runs one standalone;
it prints where to connect, logs received commands, and reads card reads from stdin
(``w26 NUMBER``, ``w34 NUMBER``, ``raw HEX``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import osdp_sys

from suishen.drivers.osdp import card_read_event
from suishen.protocol import wiegand

PASSAGE_PULSE_S = 0.1  # how long the passage input stays active
_KINDS = {osdp_sys.CMD_LED: "led", osdp_sys.CMD_BUZZER: "buzzer", osdp_sys.CMD_OUTPUT: "output"}
_OUTPUT_ON_CODES = (2, 4, 5)  # permanent on (2, 4) and temporary on (5)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedCommand:
    """A command the simulated reader received from the CP."""

    kind: str  # "led", "buzzer", "output", or "other"
    fields: dict[str, Any]
    received_mono: float


@dataclass(slots=True)
class _Schedule:
    at: float
    action: Callable[[], None] = field(compare=False)


class _SimChannel:
    """libosdp's channel for the PD: the sim's current fd or socket; never raises into C."""

    def __init__(self, sim: OsdpReaderSim) -> None:
        self.id = 0
        self._sim = sim

    def read(self, max_bytes: int) -> bytes:
        return self._sim._read(max_bytes)

    def write(self, buf: bytes) -> int:
        return self._sim._write(buf)

    def flush(self) -> None:
        return None


class OsdpReaderSim:
    """A simulated OSDP reader (one PD) with a relay output and a passage input."""

    def __init__(
        self,
        *,
        address: int = 101,
        scbk: bytes | None = None,
        passage_delay_s: float = 0.2,
        passage_probability: float = 1.0,
        poll_interval_s: float = 0.005,
        seed: int | None = None,
        log_level: int = osdp_sys.LOG_EMERG,
    ) -> None:
        self.address = address
        self.scbk = scbk
        self.passage_delay_s = passage_delay_s
        self.passage_probability = passage_probability
        self.poll_interval_s = poll_interval_s
        self._rng = random.Random(seed)  # noqa: S311 (simulation, not crypto)
        self._log_level = log_level
        self._lock = threading.Lock()
        self._received: list[ReceivedCommand] = []
        self._schedule: list[_Schedule] = []
        self._ctx: Any = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._stalled = False
        self._powered = False
        # link: exactly one of the pty or the TCP side is used
        self._mode = ""
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_path = ""
        self._link: Path | None = None
        self._tcp_port = 0
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self.port = ""  # what the CP opens

    # ------------------------------------------------------------ construction

    @classmethod
    def on_pty(cls, *, link: str | os.PathLike[str] | None = None, **kwargs: Any) -> OsdpReaderSim:
        sim = cls(**kwargs)
        sim._mode = "pty"
        sim._link = Path(link) if link is not None else None
        sim._open_pty()
        return sim

    @classmethod
    def on_tcp(cls, *, port: int = 0, **kwargs: Any) -> OsdpReaderSim:
        sim = cls(**kwargs)
        sim._mode = "tcp"
        sim._tcp_port = port
        sim._listen()
        sim.port = f"socket://127.0.0.1:{sim._tcp_port}"
        return sim

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pty_path = os.ttyname(slave)
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._pty_path)
            tmp.replace(self._link)
            self.port = str(self._link)
        else:
            self.port = self._pty_path

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._tcp_port))
        listener.listen(1)
        listener.setblocking(False)
        self._tcp_port = listener.getsockname()[1]
        self._listener = listener

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Power the reader on (a fresh PD: sequence numbers and secure channel reset)."""
        if self._thread is not None:
            return
        osdp_sys.set_loglevel(self._log_level)
        caps = [
            {"function_code": code, "compliance_level": 1, "num_items": 1}
            for code in (
                osdp_sys.CAP_OUTPUT_CONTROL,
                osdp_sys.CAP_CONTACT_STATUS_MONITORING,
                osdp_sys.CAP_READER_LED_CONTROL,
                osdp_sys.CAP_READER_AUDIBLE_OUTPUT,
                osdp_sys.CAP_CARD_DATA_FORMAT,
            )
        ]
        flags = osdp_sys.FLAG_ENFORCE_SECURE if self.scbk is not None else 0
        info = {
            "name": f"sim-{self.address}",
            "address": self.address,
            "flags": flags,
            "scbk": self.scbk,
            "channel": _SimChannel(self),
            "version": 1,
            "model": 1,
            "vendor_code": 0x5355,
            "serial_number": 0x51,
            "firmware_version": 1,
        }
        self._ctx = osdp_sys.PeripheralDevice(info, capabilities=caps)
        self._ctx.set_command_callback(self._on_command)
        self._halt.clear()
        self._powered = True
        self._thread = threading.Thread(target=self._run, name="osdp-pd-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Power the reader off (it stops answering; the link stays plugged)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._halt.set()
        thread.join(5.0)
        with self._lock:
            self._ctx = None
            self._schedule.clear()
            self._powered = False
        self._drain()

    def restart(self) -> None:
        self.stop()
        self.start()

    def unplug(self) -> None:
        """Pull the cable: close the pty / stop listening and drop the CP's connection."""
        with self._lock:
            if self._mode == "pty":
                self._close_pty()
            else:
                self._drop_client()
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None

    def plug(self) -> None:
        """Restore the link (a new pty behind the same symlink, or listen again)."""
        with self._lock:
            if self._mode == "pty" and self._master is None:
                self._open_pty()
            elif self._mode == "tcp" and self._listener is None:
                self._listen()

    def stall(self, stalled: bool) -> None:
        """Stop answering (True) or answer again (False), the link staying up."""
        self._stalled = stalled

    def close(self) -> None:
        self.stop()
        self.unplug()
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()

    def __enter__(self) -> OsdpReaderSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def online(self) -> bool:
        ctx = self._ctx
        return bool(ctx is not None and ctx.is_online())

    @property
    def secure(self) -> bool:
        ctx = self._ctx
        return bool(ctx is not None and ctx.is_sc_active())

    # ------------------------------------------------------------ card reads and inputs

    def present_card(
        self, card_number: int, fmt: wiegand.WiegandFormat = wiegand.WiegandFormat.W26
    ) -> None:
        """Present a Wiegand card (26 or 34 bits, parity set) with this card number."""
        data, bits = wiegand.encode(wiegand.WiegandCard.from_card_number(fmt, card_number))
        self.present_wiegand_bits(data, bits)

    def present_wiegand_bits(self, data: bytes, bit_length: int) -> None:
        """Send raw Wiegand bits as they are (e.g. with a wrong parity bit)."""
        self._submit(card_read_event(data, bit_length=bit_length, device_id=self._dev))

    def present_raw(self, data: bytes) -> None:
        """Send raw card data (1..64 bytes, e.g. an IC card's UID and sector data)."""
        self._submit(card_read_event(data, device_id=self._dev))

    def set_inputs(self, report: bytes) -> None:
        """Report the input states (one byte per input, 0 or 1)."""
        event = {"event": osdp_sys.EVENT_STATUS, "type": osdp_sys.STATUS_REPORT_INPUT}
        self._submit({**event, "report": bytes(report[:8]) or b"\x00"})

    def set_passage(self, *, passes: bool, delay_s: float | None = None) -> None:
        """Whether a person passes after the next output pulse, and after how long."""
        self.passage_probability = 1.0 if passes else 0.0
        if delay_s is not None:
            self.passage_delay_s = delay_s

    @property
    def _dev(self) -> str:
        return f"sim-{self.address}"

    def _submit(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._ctx is None:
                raise RuntimeError("the simulated reader is off")
            if not self._ctx.submit_event(event):
                raise RuntimeError("libosdp refused the event")

    # ------------------------------------------------------------ what it received

    @property
    def received(self) -> list[ReceivedCommand]:
        with self._lock:
            return list(self._received)

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for c in self._received if c.kind == kind)

    def last(self, kind: str) -> ReceivedCommand | None:
        with self._lock:
            return next((c for c in reversed(self._received) if c.kind == kind), None)

    async def wait_count(self, kind: str, count: int, *, timeout_s: float = 3.0) -> None:
        """Wait (without blocking the loop) until ``count`` commands of ``kind`` arrived."""
        deadline = time.monotonic() + timeout_s
        while self.count(kind) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: {self.count(kind)} of {count} commands arrived")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------ the PD thread

    def _on_command(self, command: dict[str, Any]) -> tuple[int, None]:
        now = time.monotonic()
        kind = _KINDS.get(command.get("command", -1), "other")
        self._received.append(ReceivedCommand(kind=kind, fields=dict(command), received_mono=now))
        pulse = kind == "output" and command.get("control_code") in _OUTPUT_ON_CODES
        if pulse and self._rng.random() < self.passage_probability:
            at = now + self.passage_delay_s
            self._schedule.append(_Schedule(at, lambda: self._input_event(b"\x01")))
            self._schedule.append(
                _Schedule(at + PASSAGE_PULSE_S, lambda: self._input_event(b"\x00"))
            )
        return 0, None

    def _input_event(self, report: bytes) -> None:
        if self._ctx is not None:
            event = {"event": osdp_sys.EVENT_STATUS, "type": osdp_sys.STATUS_REPORT_INPUT}
            self._ctx.submit_event({**event, "report": report})

    def _run(self) -> None:
        while not self._halt.is_set():
            now = time.monotonic()
            with self._lock:
                self._accept()
                if self._ctx is not None:
                    due = [s for s in self._schedule if s.at <= now]
                    self._schedule = [s for s in self._schedule if s.at > now]
                    for item in due:
                        item.action()
                    self._ctx.refresh()
            self._halt.wait(self.poll_interval_s)

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        self._drop_client()  # a new CP connection replaces the old one
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client

    def _drain(self) -> None:
        """While powered off, bytes sent to the reader are lost."""
        with contextlib.suppress(OSError):
            if self._master is not None:
                os.read(self._master, 65536)

    def _read(self, max_bytes: int) -> bytes:
        try:
            if self._master is not None:
                data = os.read(self._master, max_bytes)
            elif self._client is not None:
                data = self._client.recv(max_bytes)
                if not data:
                    self._drop_client()
            else:
                return b""
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            if self._client is not None:
                self._drop_client()
            return b""
        return b"" if self._stalled else data

    def _write(self, buf: bytes) -> int:
        if self._stalled:
            return len(buf)
        try:
            if self._master is not None:
                return os.write(self._master, buf)
            if self._client is not None:
                return self._client.send(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            if self._client is not None:
                self._drop_client()
            return 0
        return len(buf)  # no link: the bytes go nowhere, as on a cut cable


# --------------------------------------------------------------------------- CLI


def add_cli(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "osdp", help="an OSDP reader (libosdp PD) on a pty or loopback TCP"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pty; prints its path")
    where.add_argument("--tcp-listen", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    parser.add_argument("--address", type=int, default=101, help="OSDP address (default 101)")
    parser.add_argument("--scbk", help="secure-channel base key, 32 hex digits (default: none)")
    parser.add_argument("--link", help="with --pty: a symlink to the pty (a stable path)")
    parser.add_argument("--passage-delay", type=float, default=0.5, metavar="S")
    parser.add_argument("--passage-probability", type=float, default=1.0, metavar="P")
    parser.set_defaults(handler=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    scbk = bytes.fromhex(args.scbk) if args.scbk else None
    if scbk is not None and len(scbk) != 16:
        print("--scbk must be 32 hex digits (16 bytes)", file=sys.stderr)
        return 2
    options: dict[str, Any] = {
        "address": args.address,
        "scbk": scbk,
        "passage_delay_s": args.passage_delay,
        "passage_probability": args.passage_probability,
    }
    if args.pty:
        sim = OsdpReaderSim.on_pty(link=args.link, **options)
    else:
        sim = OsdpReaderSim.on_tcp(port=args.tcp_listen, **options)
    with sim:
        print(f"OSDP reader {args.address} on {sim.port}", flush=True)
        print("stdin: 'w26 NUMBER', 'w34 NUMBER' or 'raw HEX' presents a card", flush=True)
        seen = 0
        stop = threading.Event()

        def report() -> None:
            nonlocal seen
            while not stop.wait(0.1):
                received = sim.received
                for command in received[seen:]:
                    print(f"received {command.kind}: {command.fields}", flush=True)
                seen = len(received)

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        try:
            for line in sys.stdin:
                _present(sim, line.split())
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            reporter.join(1.0)
    return 0


def _present(sim: OsdpReaderSim, words: list[str]) -> None:
    try:
        match words:
            case ["w26", number]:
                sim.present_card(int(number), wiegand.WiegandFormat.W26)
            case ["w34", number]:
                sim.present_card(int(number), wiegand.WiegandFormat.W34)
            case ["raw", data]:
                sim.present_raw(bytes.fromhex(data))
            case []:
                return
            case _:
                print("? expected 'w26 N', 'w34 N' or 'raw HEX'", file=sys.stderr)
    except (ValueError, RuntimeError) as exc:
        print(f"not sent: {exc}", file=sys.stderr)
