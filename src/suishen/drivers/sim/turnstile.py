"""A Modbus turnstile: a pymodbus server on loopback TCP, or Modbus RTU on a pty.

Register map (one lane, ``TurnstileMap``; defaults in brackets, unit 1)::

    coil  open_coil       [0]  open relay. Every write of ON is one open command (a re-trigger
                               while on counts too); OFF releases it.
    di    passage_input   [0]  passage latch: set when the person passes, cleared by the next
                               open command, so a poll can never miss a passage.
    ir    passage_counter [0]  passages so far (uint16, wraps)       (when the map names it;
    ir    open_counter    [1]  open commands so far (uint16, wraps)    the CLI serves both)
    hr    pulse_register  [-]  board pulse function: writing N turns the relay on for
                               N * pulse_unit_ms, then off; counts as an open command.

After an open command, the person passes with ``pass_probability`` after ``delay_s`` (a new open
command cancels a passage still pending). Other addresses up to the map's highest + 16 read as
0; beyond that the answer is ILLEGAL_ADDRESS. Requests for another unit id are not answered.

Faults: ``stall(True)`` drops every request unanswered until ``stall(False)``;
``set_response_delay(s)`` answers late; ``drop()`` stops the server and closes every connection
(TCP) or hangs up the pty (RTU) -- a cable pull or power off -- and ``restore()`` brings the
device back at the same URL (same port; for RTU the same symlink to a fresh pty).

In-process (async; tests, demo, benchmarks)::

    sim = TurnstileSimulator(delay_s=0.2, pass_probability=1.0, rtu=False, port=0)
    await sim.start()          # or: async with TurnstileSimulator(...) as sim:
    sim.url                    # "tcp://127.0.0.1:PORT" or "rtu:/tmp/.../ttyTURNSTILE"
    sim.opens_received         # open commands so far
    sim.open_times             # time.monotonic() when each open command's frame was decoded
    sim.passages               # passages so far
    await sim.aclose()

CLI: ``suishen sim turnstile --port 1502 [--delay 0.5] [--pass-probability 0.9] [--rtu-pty]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import tty
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from suishen.drivers.modbus_adapter import ModbusServerLink
from suishen.protocol.turnstile import COUNTER_MODULUS, TurnstileMap

OpenListener = Callable[[float], None]

CLI_MAP = TurnstileMap(unit=1, open_coil=0, passage_input=0, passage_counter=0, open_counter=1)


class TurnstileSimulator:
    """A simulated Modbus turnstile (see the module docstring)."""

    def __init__(
        self,
        *,
        lane: TurnstileMap | None = None,
        delay_s: float = 0.5,
        pass_probability: float = 0.9,
        host: str = "127.0.0.1",
        port: int = 0,
        rtu: bool = False,
        seed: int | None = None,
        on_open: OpenListener | None = None,
    ) -> None:
        self.lane = lane or TurnstileMap()
        self.unit = self.lane.unit
        self.host = host
        self.port = port
        self.rtu = rtu
        self.delay_s = delay_s
        self.pass_probability = pass_probability
        self.stalled = False
        self.response_delay_s = 0.0
        self.on_open = on_open
        self.opens_received = 0
        self.open_times: list[float] = []
        self.passages = 0
        self.relay_on = False
        self.latch = False
        self.running = False
        self._random = random.Random(seed)  # noqa: S311 (simulated behaviour, not crypto)
        self._pending_passage: asyncio.TimerHandle | None = None
        self._relay_off: asyncio.TimerHandle | None = None
        self._tty_dir: Path | None = None
        self._slave_fd: int | None = None
        addresses = [
            a
            for a in (
                self.lane.open_coil,
                self.lane.passage_input,
                self.lane.passage_counter,
                self.lane.open_counter,
                self.lane.pulse_register,
            )
            if a is not None
        ]
        highest = max(addresses) + 16
        self._link = ModbusServerLink(self, bits=max(256, highest), registers=max(64, highest))

    # ------------------------------------------------------------------ lifecycle

    @property
    def tty_path(self) -> str:
        """RTU: the stable path (a symlink to the current pty) the driver opens."""
        if self._tty_dir is None:
            raise RuntimeError("not an RTU simulator, or not started")
        return str(self._tty_dir / "ttyTURNSTILE")

    @property
    def url(self) -> str:
        """The endpoint for ModbusGate(url=...)."""
        if self.rtu:
            return f"rtu:{self.tty_path}"
        return f"tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.rtu and self._tty_dir is None:
            self._tty_dir = Path(tempfile.mkdtemp(prefix="suishen-turnstile-"))
        await self.restore()

    async def restore(self) -> None:
        """Bring the device (back) up at the same URL."""
        if self.running:
            return
        if self.rtu:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._slave_fd = slave  # held open so the master never reads EIO between clients
            self._point_tty_link(os.ttyname(slave))
            self._link.attach_fd(master)
        else:
            self.port = await self._link.start_tcp(self.host, self.port)
        self.running = True

    async def drop(self) -> None:
        """Cable pull / power off: close every connection and stop answering connects."""
        if not self.running:
            return
        self.running = False
        if self.rtu:
            self._point_tty_link(None)
            self._link.detach_fd()
            if self._slave_fd is not None:
                os.close(self._slave_fd)
                self._slave_fd = None
        else:
            await self._link.stop_tcp()

    def _point_tty_link(self, target: str | None) -> None:
        """Point the stable tty path at the current pty (None: remove it, the cable is out)."""
        link = Path(self.tty_path)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        if target is not None:
            link.symlink_to(target)

    async def aclose(self) -> None:
        await self.drop()
        await self._link.aclose()
        for handle in (self._pending_passage, self._relay_off):
            if handle is not None:
                handle.cancel()
        if self._tty_dir is not None:
            shutil.rmtree(self._tty_dir, ignore_errors=True)
            self._tty_dir = None

    async def __aenter__(self) -> TurnstileSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ behaviour knobs

    def set_passage(
        self, *, pass_probability: float | None = None, delay_s: float | None = None
    ) -> None:
        """How the next people behave after an open command."""
        if pass_probability is not None:
            if not 0.0 <= pass_probability <= 1.0:
                raise ValueError("pass_probability must be within 0..1")
            self.pass_probability = pass_probability
        if delay_s is not None:
            if delay_s < 0:
                raise ValueError("delay_s must be >= 0")
            self.delay_s = delay_s

    def stall(self, stalled: bool = True) -> None:
        """Stop answering (True): requests are dropped unanswered; False answers again."""
        self.stalled = stalled

    def set_response_delay(self, delay_s: float) -> None:
        """Answer every request `delay_s` late (0 = at once)."""
        self.response_delay_s = max(0.0, delay_s)

    # ------------------------------------------------------------------ DeviceModel

    def coils_written(self, address: int, values: Sequence[bool], received_mono: float) -> None:
        for offset, value in enumerate(values):
            if address + offset != self.lane.open_coil:
                continue
            self._cancel_relay_off()
            self.relay_on = value
            if value:
                self._open_command(received_mono)

    def registers_written(self, address: int, values: Sequence[int], received_mono: float) -> None:
        pulse = self.lane.pulse_register
        if pulse is None or not address <= pulse < address + len(values):
            return
        units = values[pulse - address]
        if units <= 0:
            return
        self._cancel_relay_off()
        self.relay_on = True
        loop = asyncio.get_running_loop()
        self._relay_off = loop.call_later(units * self.lane.pulse_unit_ms / 1000, self._release)
        self._open_command(received_mono)

    def coil_values(self) -> Mapping[int, bool]:
        return {self.lane.open_coil: self.relay_on}

    def discrete_input_values(self) -> Mapping[int, bool]:
        return {self.lane.passage_input: self.latch}

    def input_register_values(self) -> Mapping[int, int]:
        values: dict[int, int] = {}
        if self.lane.passage_counter is not None:
            values[self.lane.passage_counter] = self.passages % COUNTER_MODULUS
        if self.lane.open_counter is not None:
            values[self.lane.open_counter] = self.opens_received % COUNTER_MODULUS
        return values

    # ------------------------------------------------------------------ internals

    def _open_command(self, received_mono: float) -> None:
        self.opens_received += 1
        self.open_times.append(received_mono)
        self.latch = False
        if self._pending_passage is not None:
            self._pending_passage.cancel()
            self._pending_passage = None
        if self.on_open is not None:
            self.on_open(received_mono)
        if self._random.random() < self.pass_probability:
            loop = asyncio.get_running_loop()
            self._pending_passage = loop.call_later(self.delay_s, self._passage)

    def _passage(self) -> None:
        self._pending_passage = None
        self.latch = True
        self.passages += 1

    def _release(self) -> None:
        self._relay_off = None
        self.relay_on = False

    def _cancel_relay_off(self) -> None:
        if self._relay_off is not None:
            self._relay_off.cancel()
            self._relay_off = None


# --------------------------------------------------------------------------- CLI


def add_cli(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "turnstile",
        help="a Modbus turnstile (pymodbus server): TCP on 127.0.0.1, or RTU on a pty",
        description=(
            "Register map (unit 1): coil 0 open relay; discrete input 0 passage latch (cleared "
            "by an open); input register 0 passage counter, 1 open counter."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1502, help="TCP port (default 1502)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds until a person passes")
    parser.add_argument(
        "--pass-probability", type=float, default=0.9, help="chance a person passes (0..1)"
    )
    parser.add_argument(
        "--rtu-pty", action="store_true", help="serve Modbus RTU on a pty instead of TCP"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible runs)")
    parser.set_defaults(handler=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    if not 0.0 <= args.pass_probability <= 1.0 or args.delay < 0:
        print("turnstile: --pass-probability must be 0..1 and --delay >= 0", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"turnstile: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> None:
    def opened(_received_mono: float) -> None:
        print(f"open command #{sim.opens_received}", flush=True)

    sim = TurnstileSimulator(
        lane=CLI_MAP,
        delay_s=args.delay,
        pass_probability=args.pass_probability,
        host=args.host,
        port=args.port,
        rtu=args.rtu_pty,
        seed=args.seed,
        on_open=opened,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with sim:  # a clean stop also removes the RTU pty's temporary directory
        print(f"turnstile simulator listening: {sim.url}", flush=True)
        await stop.wait()
