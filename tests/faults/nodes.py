"""The processes of the fault tests: gateways and the hub, as deployed, as child processes.

- ``GatewayNode``: a SimSite (pty QR scanner sims, Modbus turnstile sims, keys) in the test
  process and ``python -m suishen gateway run --config FILE`` as a child, with its own gateway
  id, a client certificate from the test CA and ``[hub] url`` pointing at a FaultProxy in front
  of the hub.  ``ScanDriver`` feeds its scanners valid codes at a steady rate.
- ``HubProcess``: ``python -m suishen hub run --config FILE --ready-file PATH`` with a DSN into
  the test's database, on a fixed port so that a restarted hub is where the proxies forward to.

Every process is killed by ``aclose()`` (kill -9, reaped); the fixtures call it in finalizers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from suishen.demo.simsite import PEPPER_ENV, LaneSpec, SimSite
from suishen.gateway.records import Direction
from suishen.protocol.codes import Identity
from suishen.protocol.identity import cnid_check_digit
from tests.faults.postgres import free_port
from tests.http_probe import http_get

POLL_S = 0.05
READY_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 60


# --------------------------------------------------------------------------- child processes


def open_journal(path: Path) -> sqlite3.Connection:
    """A gateway journal, read-only (without touching the WAL of a gateway still running)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


class ChildProcess:
    """One child process, its output appended to a log file; kill -9 safe to repeat."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def spawn(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {self.name} start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        self.starts += 1

    def exited(self) -> int | None:
        """The exit code if the process ended on its own, else None."""
        return None if self.proc is None else self.proc.returncode

    async def kill9(self) -> None:
        """SIGKILL and reap."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time.  Returns the exit code."""
        proc, self.proc = self.proc, None
        assert proc is not None, f"{self.name} is not running"
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    return await proc.wait()
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                raise AssertionError(
                    f"{self.name} ignored SIGTERM for {timeout_s} s:\n{self.log_tail()}"
                ) from None
        return proc.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def python_module_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "suishen", *args]


# --------------------------------------------------------------------------- gateways


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HubLink:
    """What a gateway needs to reach the hub: the URL (the proxy's) and its TLS files."""

    url: str
    ca: Path
    client_cert: Path
    client_key: Path

    def toml(self) -> str:
        return (
            f'[hub]\nurl = "{self.url}"\nclient_cert = "{self.client_cert}"\n'
            f'client_key = "{self.client_key}"\nca = "{self.ca}"\n'
        )


def person(index: int) -> Identity:
    """A distinct adult with a valid resident ID number for each index."""
    born = dt.date(1960, 1, 1) + dt.timedelta(days=index // 1000)
    body = f"110105{born:%Y%m%d}{index % 1000:03d}"
    return Identity(
        idt="RIC",
        idn=body + cnid_check_digit(body),
        nat="CHN",
        nm="张三明",
        dob=born.isoformat(),
        st="G",
    )


class GatewayNode:
    """A simulated site and its gateway process (``python -m suishen gateway run``)."""

    def __init__(self, site: SimSite, gateway_id: str, http_port: int, log_path: Path) -> None:
        self.site = site
        self.gateway_id = gateway_id
        self.http_port = http_port
        self.process = ChildProcess(
            gateway_id,
            python_module_argv("gateway", "run", "--config", str(site.config_path)),
            log_path,
            {**os.environ, **site.environ},
        )

    @classmethod
    async def create(
        cls,
        root: Path,
        gateway_id: str,
        *,
        hub: HubLink | None = None,
        pepper: bytes | None = None,
        hub_keys: dict[str, Path] | None = None,
        passage_delay_s: float = 0.02,
        extra_toml: str = "",
    ) -> GatewayNode:
        """A site with one IN and one OUT lane under ``root``; ``pepper`` (shared by the
        deployment, so person keys match the hub's watchlist) and ``hub_keys`` (the hub's
        public ``bundle`` and ``seal`` key files, copied over the site's own) are optional."""
        port = free_port()
        site = await SimSite.create(
            root,
            lanes=[LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)],
            passage_delay_s=passage_delay_s,
            http_port=port,
        )
        try:
            if pepper is not None:
                site.pepper = pepper
                site.environ = {PEPPER_ENV: base64.b64encode(pepper).decode()}
            for kind, source in (hub_keys or {}).items():
                target = {"bundle": "hub-bundle.pub", "seal": "hub-seal.pub"}[kind]
                shutil.copyfile(source, root / "keys" / target)
            extra = (hub.toml() if hub is not None else "") + extra_toml
            text = site.config_text(rules_toml="", http_port=port, extra=extra)
            default_id = f'[gateway]\nid = "gw-{site.kind.value}"\n'
            assert default_id in text
            text = text.replace(default_id, f'[gateway]\nid = "{gateway_id}"\n')
            site.config_path.write_text(text, encoding="utf-8")
        except BaseException:
            await site.aclose()
            raise
        return cls(site, gateway_id, port, root / "gateway.log")

    @property
    def journal_path(self) -> Path:
        return self.site.root / "state" / "journal.sqlite3"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.process.env = {**os.environ, **self.site.environ}
        await self.process.spawn()
        await self.wait_ready(timeout_s)

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until /health answers 200 and every device of every lane is connected."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.process.exited()
            if code is not None:
                raise AssertionError(
                    f"{self.gateway_id} exited with {code}:\n{self.process.log_tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                health, _ = await self.get("/health")
                if health == 200:
                    status = await self.status()
                    states = [
                        d["state"] for lane in status["lanes"] for d in lane["devices"].values()
                    ]
                    if states and all(s == "connected" for s in states):
                        return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.gateway_id} not ready in {timeout_s} s:\n{self.process.log_tail()}"
                )
            await asyncio.sleep(POLL_S)

    async def get(self, path: str) -> tuple[int, Any]:
        return await http_get(self.base_url + path)

    async def status(self) -> dict[str, Any]:
        code, body = await self.get("/status")
        assert code == 200, body
        return body

    async def kill9(self) -> None:
        await self.process.kill9()

    async def restart(self) -> None:
        await self.process.kill9()
        await self.start()

    async def aclose(self) -> None:
        await self.process.kill9()
        await self.site.aclose()

    def journal_counts(self) -> tuple[int, int]:
        """(rows in the journal, the sync cursor), read from the file."""
        db = open_journal(self.journal_path)
        try:
            rows = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            cursor = db.execute("SELECT acked_seq FROM sync_cursor").fetchone()
            return rows, (cursor[0] if cursor else 0)
        finally:
            db.close()


@dataclasses.dataclass(slots=True)
class ScanDriver:
    """Valid codes at a steady rate into one gateway's scanners: person k goes in at in-1,
    later out at out-1.  Tolerates a gateway that is down (nobody reads the pty: once its
    buffer is full a scan cannot be delivered within ``send_timeout_s`` and is counted in
    ``undelivered``, as a real scanner would lose it)."""

    node: GatewayNode
    rate_hz: float
    first_person: int = 0
    people: int = 20
    send_timeout_s: float = 0.2
    sent: int = 0
    undelivered: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        assert self._task is None
        self._task = asyncio.create_task(self._run(), name=f"scans-{self.node.gateway_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        interval = 1.0 / self.rate_hz
        step = 0
        next_at = time.monotonic()
        while True:
            index = self.first_person + (step // 2) % self.people
            lane = "in-1" if step % 2 == 0 else "out-1"
            text = self.node.site.code(person(index), iat=int(time.time()))
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await self.node.site.scan(lane, text)
                self.sent += 1
            except (TimeoutError, ConnectionError, OSError):
                self.undelivered += 1
            step += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


# --------------------------------------------------------------------------- the hub


class HubProcess:
    """``python -m suishen hub run --config FILE --ready-file PATH`` on a fixed port, so that
    a restarted hub is where the proxy forwards to.  Ready when the ready file names the
    current process (a hub killed with -9 leaves its old file behind)."""

    def __init__(self, root: Path, dsn: str, pki_dir: Path) -> None:
        self.root = root
        self.dsn = dsn
        self.port = free_port()
        self.config_path = root / "hub.toml"
        self.ready_file = root / "hub.ready"
        self.state_dir = root / "state"
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "[hub]\n"
            'state_dir = "state"\n'
            'log_level = "debug"\n'
            "[database]\n"
            f'dsn = "{dsn}"\n'
            "min_size = 1\n"
            "max_size = 10\n"
            "[gateway_listener]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f'pki_dir = "{pki_dir}"\n'
            "[web_listener]\n"
            'host = "127.0.0.1"\n'
            f"port = {free_port()}\n",
            encoding="utf-8",
        )
        self.process = ChildProcess(
            "hub",
            python_module_argv(
                "hub", "run", "--config", str(self.config_path),
                "--ready-file", str(self.ready_file),
            ),
            root / "hub.log",
            dict(os.environ),
        )  # fmt: skip

    @property
    def bundle_public(self) -> Path:
        return self.state_dir / "keys" / "bundle.pub.pem"

    @property
    def seal_public(self) -> Path:
        return self.state_dir / "keys" / "seal.pub.pem"

    async def cli(self, *args: str) -> str:
        """Run ``suishen hub ARGS`` (database commands get ``--dsn``); its stdout."""
        proc = await asyncio.create_subprocess_exec(
            *python_module_argv("hub", *args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise AssertionError(
                f"suishen hub {' '.join(args)} exited {proc.returncode}:\n{out.decode()}"
                f"{err.decode()}"
            )
        return out.decode()

    async def init_keys(self) -> None:
        await self.cli("keys", "init", "--state", str(self.state_dir))

    async def start(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Start and wait until ready; returns the seconds that took."""
        started = time.monotonic()
        self.ready_file.unlink(missing_ok=True)
        await self.process.spawn()
        deadline = started + timeout_s
        while True:
            code = self.process.exited()
            if code is not None:
                raise AssertionError(f"hub exited with {code}:\n{self.process.log_tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                ready = json.loads(self.ready_file.read_text(encoding="utf-8"))
                if ready.get("pid") == self.process.pid:
                    assert ready["port"] == self.port, ready
                    return time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(f"hub not ready in {timeout_s} s:\n{self.process.log_tail()}")
            await asyncio.sleep(POLL_S)

    async def kill9(self) -> None:
        await self.process.kill9()

    async def stop(self) -> int:
        """SIGTERM (a clean stop); the exit code."""
        return await self.process.terminate()

    @property
    def running(self) -> bool:
        return self.process.running

    async def aclose(self) -> None:
        await self.process.kill9()


def person_key_of(node: GatewayNode, who: Identity) -> str:
    """The person key this gateway computes for ``who`` (pepper as its config reads it)."""
    from suishen.gateway.config import load_config  # noqa: PLC0415
    from suishen.protocol.person import person_key  # noqa: PLC0415

    pepper = load_config(node.site.config_path).privacy.read_pepper(node.site.environ)
    return person_key(pepper, who.idt, who.idn, who.nat)


def log_events(process: ChildProcess, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``event`` a process wrote (structlog JSON, one object a line)."""
    found = []
    for line in process.log_text().splitlines():
        if f'"{event}"' not in line:
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == event:
                found.append(record)
    return found
