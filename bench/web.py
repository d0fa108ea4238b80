"""The people-facing side under load (issue 10, item 7).

``python -m bench.web [--scale S] [--users N] [--rounds R]`` (``--scale 1`` is the issue's
size; tests run it tiny):

1. **Data.** An embedded PostgreSQL (pgserver, unix socket) in a temp directory, the migrated
   schema, and ``10M x scale`` scans written with COPY (``copy_records_to_table``, 50k rows per
   call, two connections) over ``--days`` daily partitions for 20 sites (one gateway and 8
   lanes each): 92 % allowed, the rest spread over the usual reasons, persons drawn from a pool
   so that people come back. Rows/s of the load is reported.
2. **Pages.** ``--users`` concurrent users (each its own session: logs in, then opens the
   dashboard and the scan log pages in turn, ``--rounds`` times), driven from a separate
   process so their HTTP work is not charged to the hub: p50/p95 page latency per page.
   Target p95 <= 150 ms. Needs the hub's web UI (suishen.central.web); without it the table
   says "not measured" and why.
3. **CSV export** of 1M x scale rows, streamed by a client in the other process while the hub
   process samples its own RSS every 20 ms: rows, seconds, RSS before and the peak during the
   export (constant memory: the peak stays near the baseline whatever the row count). Needs the
   scan log's export (suishen.central.web).
4. **Live feed latency**, gate decision -> browser: a real gateway (pty scanners, Modbus
   turnstile simulators) with the lane display on, 20 tablets (event streams) on 4 lanes, scans
   at every lane at once; per event, client receipt time - the decision's time stamp (the
   record's ts, taken by the lane when it decided). Target p99 <= 1 s. The hub's own live feed
   (gateway -> upload -> hub -> dashboard) is measured the same way once the web UI is here.

Prints a table and writes bench/results/web.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yarl

from bench.common import print_table, write_results
from suishen.central.connection import Connection
from suishen.sync.wire import SCAN_COLUMNS

FULL_ROWS = 10_000_000  # scans at --scale 1
EXPORT_ROWS = 1_000_000  # rows of the CSV export at --scale 1
SITES = 20
LANES_PER_SITE = 8
CHUNK_ROWS = 50_000
COPY_CONNECTIONS = 2
PERSONS = 200_000  # distinct people the generated scans name
PAGE_P95_TARGET_MS = 150.0
FEED_P99_TARGET_S = 1.0
# The wire's scan columns, then received_at (else every generated row would look just received,
# which no real hub's table does: the live feed and health queries select on it).
COPY_COLUMNS = (*SCAN_COLUMNS, "received_at")
UPLOAD_DELAY = dt.timedelta(seconds=0.4)
SITE_KINDS = ("building", "construction", "hotel", "venue")
DENY_REASONS = (
    "status_red",
    "status_yellow",
    "expired",
    "replay",
    "anti_passback",
    "not_registered",
    "capacity_full",
    "bad_signature",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "明华伟芳娜敏静丽强磊军洋勇艳杰娟涛超秀霞平刚桂"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True, kw_only=True)
class Generated:
    rows: int
    sites: tuple[str, ...]
    first_ts: dt.datetime
    last_ts: dt.datetime
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def site_ids(sites: int = SITES) -> tuple[str, ...]:
    return tuple(f"bench-site-{n:02d}" for n in range(sites))


def _persons(count: int) -> list[tuple[str, str, str]]:
    """(person_key, masked_name, masked_number) of a pool of made-up people."""
    people = []
    for n in range(count):
        key = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
        name = f"{SURNAMES[n % len(SURNAMES)]}*{GIVEN[(n // len(SURNAMES)) % len(GIVEN)]}"
        people.append((key, name, f"310***********{n % 10_000:04d}"))
    return people


def scan_rows(
    *, rows: int, sites: Sequence[str], start: dt.datetime, end: dt.datetime, persons: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The generated scans in COPY_COLUMNS order, CHUNK_ROWS per list, in time order.

    Every tenth row is at the first site, the others go round the rest; each site's one
    gateway numbers its rows 1, 2, 3, ... in time order, as a journal does."""
    people = _persons(min(persons, max(rows, 1)))
    span = (end - start).total_seconds()
    step = span / max(rows, 1)
    gateways = [f"gw-{site}" for site in sites]
    journals = [hashlib.sha256(g.encode()).hexdigest()[:16] for g in gateways]
    lanes = [f"lane-{n + 1}" for n in range(LANES_PER_SITE)]
    others = len(sites) - 1
    seqs = [0] * len(sites)
    chunk: list[tuple[Any, ...]] = []
    for k in range(rows):
        # The first site (a big one) holds a tenth of the rows: its export is EXPORT_ROWS.
        s = 0 if others == 0 or k % 10 == 0 else 1 + k % others
        seqs[s] += 1
        lane = seqs[s] % LANES_PER_SITE
        key, name, number = people[(k * 7919) % len(people)]
        ts = start + dt.timedelta(seconds=k * step)
        denied = k % 13 == 0  # ~7.7 % denied
        chunk.append(
            (
                gateways[s],
                seqs[s],
                ts,
                sites[s],
                lanes[lane],
                "in" if lane % 2 == 0 else "out",
                "SSC1",
                "deny" if denied else "allow",
                DENY_REASONS[(k // 13) % len(DENY_REASONS)] if denied else None,
                key,
                "CHN",
                False,
                "R" if denied and (k // 13) % len(DENY_REASONS) == 0 else "G",
                name,
                number,
                f"{k:032x}",
                "AAECAwQFBgc=",
                "main",
                1500 + k % 997,
                None,
                None,
                journals[s],
                ts + UPLOAD_DELAY,  # received_at: the hub got it soon after (as ingest stamps)
            )
        )
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def register_sites(con: Connection, sites: Sequence[str]) -> None:
    """The sites, their gateways and lanes the generated scans name."""
    for n, site in enumerate(sites):
        await con.execute(
            "INSERT INTO sites (site_id, kind, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            site,
            SITE_KINDS[n % len(SITE_KINDS)],
            f"测试场所 {n:02d}",
        )
        await con.execute(
            "INSERT INTO gateways (gateway_id, site_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            f"gw-{site}",
            site,
        )
        await con.executemany(
            "INSERT INTO lanes (gateway_id, lane_id, site_id, direction) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING",
            [
                (f"gw-{site}", f"lane-{i + 1}", site, "in" if i % 2 == 0 else "out")
                for i in range(LANES_PER_SITE)
            ],
        )


async def generate_scans(
    pool: asyncpg.Pool,
    *,
    rows: int,
    days: int,
    sites: int = SITES,
    now: dt.datetime | None = None,
    persons: int = PERSONS,
) -> Generated:
    """Write ``rows`` scans with COPY over the ``days`` days up to ``now``; partitions made."""
    from suishen.central.partitions import ensure_partitions_for  # noqa: PLC0415 - hub extra

    now = now or dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=days)
    ids = site_ids(sites)
    async with pool.acquire() as con:
        await ensure_partitions_for(
            con, "scans", [(start + dt.timedelta(days=d)).date() for d in range(days + 1)]
        )
        await register_sites(con, ids)
    chunks: asyncio.Queue[list[tuple[Any, ...]] | None] = asyncio.Queue(maxsize=4)

    async def writer() -> None:
        async with pool.acquire() as con:
            while (chunk := await chunks.get()) is not None:
                await con.copy_records_to_table("scans", records=chunk, columns=COPY_COLUMNS)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        writers = [group.create_task(writer()) for _ in range(COPY_CONNECTIONS)]
        for chunk in scan_rows(rows=rows, sites=ids, start=start, end=now, persons=persons):
            await chunks.put(chunk)
        for _ in writers:
            await chunks.put(None)
    async with pool.acquire() as con:
        await con.execute("ANALYZE scans", timeout=3600)  # minutes at 10M rows on a busy machine
    seconds = time.perf_counter() - started
    return Generated(rows=rows, sites=ids, first_ts=start, last_ts=now, seconds=seconds)


# --------------------------------------------------------------------------- pages (clients)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPlan:
    """One simulated user: who logs in (form login with a CSRF token) and the pages they open."""

    username: str
    password: str
    paths: tuple[str, ...]


def _client() -> aiohttp.ClientSession:
    # The hub is at 127.0.0.1: aiohttp's default jar ignores cookies from IP addresses.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


_CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


async def login(session: aiohttp.ClientSession, base_url: str, plan: UserPlan) -> None:
    """Log in through the login form (its CSRF token if any, and the Origin the hub checks)."""
    async with session.get(base_url + "/login") as page:
        found = _CSRF.search(await page.text())
    form = {"username": plan.username, "password": plan.password, "next": "/"}
    if found is not None:
        form["csrf_token"] = found.group(1)
    async with session.post(
        base_url + "/login", data=form, headers={"Origin": base_url}, allow_redirects=False
    ) as answer:
        if answer.status not in (302, 303) or "/login" in answer.headers.get("Location", ""):
            raise RuntimeError(f"login of {plan.username} failed: HTTP {answer.status}")
    if not any(cookie.key == "suishen_session" for cookie in session.cookie_jar):
        raise RuntimeError(f"login of {plan.username} set no session cookie")


async def page_latencies(
    base_url: str, plans: Sequence[UserPlan], rounds: int
) -> dict[str, list[float]]:
    """Every user logs in, then GETs each of their paths in turn ``rounds`` times, all users at
    once; seconds per GET, keyed by the path with the user's site replaced by ``{site}``."""
    latencies: dict[str, list[float]] = {}

    async def user(n: int, plan: UserPlan) -> None:
        async with _client() as session:
            await login(session, base_url, plan)
            paths = list(plan.paths)
            for path in paths:  # warm-up, not counted (first template renders, plans)
                async with session.get(base_url + path, allow_redirects=False) as response:
                    await response.read()
            for r in range(rounds):
                shift = (n + r) % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    began = time.perf_counter()
                    async with session.get(base_url + path, allow_redirects=False) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"{path}: HTTP {response.status}")
                    key = re.sub(r"bench-site-\d+", "{site}", path)
                    latencies.setdefault(key, []).append(time.perf_counter() - began)

    await asyncio.gather(*(user(n, plan) for n, plan in enumerate(plans)))
    return latencies


def _pages_process(base_url: str, plans: Sequence[UserPlan], rounds: int) -> dict[str, list[float]]:
    return asyncio.run(page_latencies(base_url, plans, rounds))


async def session_cookies(base_url: str, plan: UserPlan) -> dict[str, str]:
    """Log in and return the session's cookies (to hand to another process)."""
    async with _client() as session:
        await login(session, base_url, plan)
        return {cookie.key: cookie.value for cookie in session.cookie_jar}


async def stream_export(url: str, cookies: dict[str, str]) -> tuple[int, int, float]:
    """(lines, bytes, seconds) of a streamed GET with an already logged-in session's cookies,
    read in 64 KiB pieces and dropped."""
    async with _client() as session:
        session.cookie_jar.update_cookies(cookies, yarl.URL(url))
        began = time.perf_counter()
        lines = size = 0
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise RuntimeError(f"export: HTTP {response.status}")
            async for piece in response.content.iter_chunked(65536):
                lines += piece.count(b"\n")
                size += len(piece)
        return lines, size, time.perf_counter() - began


def _export_process(url: str, cookies: dict[str, str]) -> tuple[int, int, float]:
    return asyncio.run(stream_export(url, cookies))


@contextlib.asynccontextmanager
async def client_process() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``async with client_process() as run: await run(function, *args)``: the clients in one
    fresh process (they are other machines), started and warmed up before the first run."""
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        await loop.run_in_executor(pool, _nothing)

        async def run(function: Callable[..., Any], *args: Any) -> Any:
            return await loop.run_in_executor(pool, function, *args)

        yield run


def _nothing() -> None:
    import aiohttp as _  # noqa: F401, PLC0415 - the warm-up imports what the clients use


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        statm = Path("/proc/self/statm").read_text(encoding="ascii")
        return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


@dataclass(slots=True)
class RssSampler:
    """Samples this process's RSS every ``interval_s`` while running (``async with``)."""

    interval_s: float = 0.02
    before: int = 0
    peak: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes())
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> RssSampler:
        self.before = self.peak = rss_bytes()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, rss_bytes())


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


# --------------------------------------------------------------------------- live feed


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLatency:
    events: int  # events the browsers received
    expected: int  # events they should have received (decided scans x browsers each)
    latencies_s: tuple[float, ...]
    scans: int = 0  # scans put on the scanners' wires
    decided: int = 0  # scans the gateway decided and published (others were lane_busy)

    @property
    def p50(self) -> float:
        return percentile(self.latencies_s, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_s, 99)


async def _sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    name, data = "message", list[str]()
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


async def lane_display_latency(
    root: Path, *, lanes: int = 4, tablets_per_lane: int = 5, scans_per_lane: int = 25
) -> FeedLatency:
    """Gate decision -> tablet: a real gateway with the lane display on (see the docstring)."""
    from suishen.demo.simsite import LaneSpec, SimSite  # noqa: PLC0415 - devices extra
    from suishen.gateway.config import load_config  # noqa: PLC0415
    from suishen.gateway.records import Direction  # noqa: PLC0415
    from suishen.gateway.service import GatewayService  # noqa: PLC0415

    specs = [
        LaneSpec(id=f"in-{n + 1}", direction=Direction.IN if n % 2 == 0 else Direction.OUT)
        for n in range(lanes)
    ]
    site = await SimSite.create(
        root,
        lanes=specs,
        passage_delay_s=0.01,
        extra_toml="[display]\nenabled = true\nport = 0\nqueue_events = 64\n",
    )
    try:
        service = GatewayService(load_config(site.config_path), environ=site.environ)
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(10):
                await service.wait_ready()
                while not _devices_up(service.status()):
                    await asyncio.sleep(0.01)
            return await _drive_display(
                service,
                site,
                specs,
                tablets_per_lane=tablets_per_lane,
                scans_per_lane=scans_per_lane,
            )
        finally:
            service.stop()
            async with asyncio.timeout(10):
                await task
    finally:
        await site.aclose()


async def _drive_display(
    service: Any, site: Any, specs: Sequence[Any], *, tablets_per_lane: int, scans_per_lane: int
) -> FeedLatency:
    """The tablets and the scanners of ``lane_display_latency`` on a running gateway."""
    from suishen.protocol.codes import Identity  # noqa: PLC0415

    latencies: list[float] = []
    hub = service.display
    assert hub is not None
    base = f"http://127.0.0.1:{service.display_port}"
    published = {spec.id: 0 for spec in specs}  # scans decided and fanned out
    seen: dict[int, int] = {}
    async with _client() as http:

        async def tablet(n: int, lane_id: str) -> None:
            seen[n] = 0
            async with http.get(f"{base}/display/{lane_id}/events") as stream:
                async for name, data in _sse(stream):
                    if name == "verdict":
                        latencies.append(time.time() - json.loads(data)["ts"])
                        seen[n] += 1

        lane_of = [spec.id for spec in specs for _ in range(tablets_per_lane)]
        readers = [asyncio.create_task(tablet(n, lane)) for n, lane in enumerate(lane_of)]
        async with asyncio.timeout(10):
            while sum(hub.subscribers(spec.id) for spec in specs) < len(readers):
                await asyncio.sleep(0.01)

        async def scanner(lane_id: str, offset: int) -> None:
            """One person after the other: scan, wait for the verdict, walk through."""
            for n in range(scans_per_lane):
                idn = f"{offset:02d}{n:04d}"
                identity = Identity(
                    idt="PP", idn=idn, nat="FRA", nm="Jean Bench", dob="1980-01-01", st="G"
                )
                before = hub.last.get(lane_id)
                code = site.code(identity, iat=int(time.time()), ttl_s=120)
                await site.scan(lane_id, code)
                # A scan that reaches a lane still busy with the last person is
                # journalled lane_busy and shows nothing: it is not waited for.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        while hub.last.get(lane_id) is before:
                            await asyncio.sleep(0.002)
                        published[lane_id] += 1
                await asyncio.sleep(0.1)  # through the turnstile; the next steps up

        try:
            async with asyncio.timeout(120):
                await asyncio.gather(*(scanner(s.id, i) for i, s in enumerate(specs)))
                while any(seen[n] < published[lane] for n, lane in enumerate(lane_of)):
                    await asyncio.sleep(0.01)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    expected = tablets_per_lane * sum(published.values())
    return FeedLatency(
        events=len(latencies),
        expected=expected,
        latencies_s=tuple(latencies),
        scans=len(specs) * scans_per_lane,
        decided=sum(published.values()),
    )


# --------------------------------------------------------------------------- a site uploading

UPLOAD_SITE_ID = "site-building"  # what SimSite names a building site and its gateway
UPLOAD_GATEWAY_ID = "gw-building"


@dataclass(slots=True)
class UploadingSite:
    """A simulated site whose real gateway uploads to the hub (see ``site_uploading``)."""

    site: Any  # suishen.demo.simsite.SimSite
    service: Any  # suishen.gateway.service.GatewayService
    pool: asyncpg.Pool

    async def scan(self, lane_id: str, identity: Any) -> None:
        """Scan a freshly issued code for ``identity`` at the lane's pty scanner."""
        await self.site.scan(lane_id, self.site.code(identity, iat=int(time.time()), ttl_s=120))

    async def central_scans(self) -> int:
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM scans WHERE site_id = $1", UPLOAD_SITE_ID
        )
        return count


@contextlib.asynccontextmanager
async def site_uploading(
    pool: asyncpg.Pool,
    root: Path,
    *,
    lanes: Sequence[Any] | None = None,
    batch_interval_s: float = 0.2,
    alerts: Any = None,
) -> AsyncIterator[UploadingSite]:
    """The hub's gateway listener (``gateway_app`` on ``pool``, mutual TLS under a fresh
    deployment CA; with ``alerts``, an AlertsSection, also the webhook sender) and a SimSite
    gateway (pty scanners, Modbus turnstile simulators) whose [hub] section points at it; the
    site and its gateway are registered at the hub."""
    from suishen.central.app import gateway_app, serve  # noqa: PLC0415 - hub extra
    from suishen.demo.simsite import LaneSpec, SimSite  # noqa: PLC0415 - devices extra
    from suishen.gateway.config import load_config  # noqa: PLC0415
    from suishen.gateway.records import Direction, SiteKind  # noqa: PLC0415
    from suishen.gateway.service import GatewayService  # noqa: PLC0415
    from suishen.sync import pki  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(root / "pki", now=now)
    pki.issue_hub(root / "pki", now=now)
    pki.issue_gateway(root / "pki", UPLOAD_GATEWAY_ID, now=now)
    fingerprint = pki.fingerprint(pki.load_certificate(layout.gateway_cert(UPLOAD_GATEWAY_ID)))
    async with pool.acquire() as con, con.transaction():
        await con.execute(
            "INSERT INTO sites (site_id, kind, name) VALUES ($1, 'building', '测试大厦') "
            "ON CONFLICT (site_id) DO NOTHING",
            UPLOAD_SITE_ID,
        )
        await con.execute(
            "INSERT INTO gateways (gateway_id, site_id, cert_sha256) VALUES ($1, $2, $3)",
            UPLOAD_GATEWAY_ID,
            UPLOAD_SITE_ID,
            fingerprint,
        )
    site = await SimSite.create(
        root / "site",
        kind=SiteKind.BUILDING,
        lanes=list(lanes or [LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)]),
        passage_delay_s=0.02,
    )
    try:
        # The site's own bundle key signs what the hub serves it (the key its gateway pins).
        app = gateway_app(bundle_key=site.bundle_key, pool=pool, bundle_poll_s=0.5, alerts=alerts)
        runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
        try:
            site.write_config(
                rules_toml="",
                http_port=0,
                extra=(
                    f'[hub]\nurl = "https://localhost:{port}"\n'
                    f'client_cert = "{layout.gateway_cert(UPLOAD_GATEWAY_ID)}"\n'
                    f'client_key = "{layout.gateway_key(UPLOAD_GATEWAY_ID)}"\n'
                    f'ca = "{layout.ca_cert}"\n'
                    f"batch_interval_s = {batch_interval_s}\nlong_poll_s = 2\n"
                ),
            )
            service = GatewayService(load_config(site.config_path), environ=site.environ)
            task = asyncio.create_task(service.run())
            try:
                async with asyncio.timeout(15):
                    await service.wait_ready()
                    while not _devices_up(service.status()):
                        await asyncio.sleep(0.01)
                yield UploadingSite(site=site, service=service, pool=pool)
            finally:
                service.stop()
                async with asyncio.timeout(15):
                    await task
        finally:
            await runner.cleanup()
    finally:
        await site.aclose()


def _devices_up(status: dict[str, Any]) -> bool:
    states = [d["state"] for lane in status["lanes"] for d in lane["devices"].values()]
    return bool(states) and all(state == "connected" for state in states)


async def hub_feed_latency(
    pool: asyncpg.Pool, root: Path, base_url: str, *, browsers: int = 20, scans: int = 25
) -> FeedLatency:
    """Gate decision -> browser through the hub: a gateway uploads (batch_interval_s 0.2, the
    default), ingest notifies, the live feed pushes to ``browsers`` logged-in dashboard streams.
    Each scan is sent when every browser has the previous one; its latency per browser is
    receipt - the moment the code was put on the scanner's wire (an upper bound: it includes
    framing, verification and the journal commit before the decision)."""
    from suishen.central.store.users import add_user, grant_site  # noqa: PLC0415
    from suishen.protocol.codes import Identity  # noqa: PLC0415
    from suishen.protocol.vocabulary import Role  # noqa: PLC0415

    latencies: list[float] = []
    sent: list[float] = []
    async with site_uploading(pool, root) as site:
        plans = []
        async with pool.acquire() as con:
            for n in range(browsers):
                name = f"feed-{n:02d}"
                await add_user(
                    con, name, role=Role.SITE_MANAGER, password=BENCH_PASSWORD, display_name=name
                )
                await grant_site(con, name, UPLOAD_SITE_ID)
                plans.append(UserPlan(username=name, password=BENCH_PASSWORD, paths=()))
        received = [0] * browsers
        progress = asyncio.Condition()
        opened = 0

        async def browser(n: int, plan: UserPlan) -> None:
            nonlocal opened
            async with _client() as session:
                await login(session, base_url, plan)
                url = f"{base_url}/site/{UPLOAD_SITE_ID}/feed"
                async with session.get(url) as stream:
                    if stream.status != 200:
                        raise RuntimeError(f"live feed: HTTP {stream.status}")
                    async with progress:
                        opened += 1
                        progress.notify_all()
                    async for name, _data in _sse(stream):
                        if name != "scan" or received[n] >= len(sent):
                            continue  # not a scan of ours (none is sent before the first)
                        latencies.append(time.perf_counter() - sent[received[n]])
                        async with progress:
                            received[n] += 1
                            progress.notify_all()
                        if received[n] == scans:
                            return

        readers = [asyncio.create_task(browser(n, plan)) for n, plan in enumerate(plans)]
        try:
            async with asyncio.timeout(30), progress:
                await progress.wait_for(lambda: opened == browsers)
            for k in range(scans):
                identity = Identity(
                    idt="PP", idn=f"F{k:07d}", nat="FRA", nm="Jean Bench", dob="1980-01-01", st="G"
                )
                sent.append(time.perf_counter())
                await site.scan("in-1" if k % 2 == 0 else "out-1", identity)
                async with asyncio.timeout(30), progress:
                    await progress.wait_for(lambda: min(received) > k)  # noqa: B023 - now
            await asyncio.gather(*readers)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    return FeedLatency(
        events=len(latencies), expected=browsers * scans, latencies_s=tuple(latencies)
    )


# --------------------------------------------------------------------------- the hub's web UI


# The pages under load, per site ({site}); the export is the scan log's CSV of the filtered rows.
PAGES = ("/site/{site}", "/site/{site}/scans")
EXPORT = "/site/{site}/scans.csv"
BENCH_PASSWORD = "bench password 1"


def hub_web_available() -> str | None:
    """None when the hub's web UI is importable, else why the page measures are skipped."""
    import importlib.util  # noqa: PLC0415

    try:
        found = importlib.util.find_spec("suishen.central.web.app")
    except ModuleNotFoundError:
        found = None
    if found is None:
        return "suishen.central.web (the hub's web UI) is not on this branch yet"
    return None


async def _make_users(pool: asyncpg.Pool, sites: Sequence[str], users: int) -> list[str]:
    """``users`` site managers, user n granted site n % len(sites)."""
    from suishen.central.store.users import add_user, grant_site  # noqa: PLC0415
    from suishen.protocol.vocabulary import Role  # noqa: PLC0415

    names = []
    async with pool.acquire() as con:
        for n in range(users):
            name = f"bench-{n:02d}"
            await add_user(
                con, name, role=Role.SITE_MANAGER, password=BENCH_PASSWORD, display_name=name
            )
            await grant_site(con, name, sites[n % len(sites)])
            names.append(name)
    return names


async def _missing_page(base_url: str, plan: UserPlan) -> str | None:
    """The first of the plan's paths the hub does not serve (200), if any."""
    async with _client() as session:
        await login(session, base_url, plan)
        for path in plan.paths:
            async with session.get(base_url + path, allow_redirects=False) as response:
                if response.status != 200:
                    return f"{path} answers HTTP {response.status}"
    return None


async def measure_hub(
    pool: asyncpg.Pool, root: Path, options: Options, sites: Sequence[str]
) -> dict[str, Any]:
    """Pages and export through the hub's web UI, served from this process on loopback."""
    why = hub_web_available()
    if why is not None:
        return {"pages": {"measured": False, "why": why}, "export": {"measured": False, "why": why}}
    from suishen.central.app import serve_web  # noqa: PLC0415
    from suishen.central.config import HubConfig  # noqa: PLC0415
    from suishen.central.web.app import web_app  # noqa: PLC0415

    names = await _make_users(pool, sites, options.users)
    plans = [
        UserPlan(
            username=name,
            password=BENCH_PASSWORD,
            paths=tuple(p.format(site=sites[n % len(sites)]) for p in PAGES),
        )
        for n, name in enumerate(names)
    ]
    results: dict[str, Any] = {}
    runner, port = await serve_web(web_app(pool=pool, config=HubConfig()), "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{port}"
    try:
        missing = await _missing_page(base_url, plans[0])
        if missing is not None:
            results["pages"] = {"measured": False, "why": missing}
        else:
            async with client_process() as run:
                latencies = await run(_pages_process, base_url, plans, options.rounds)
            every = [x for values in latencies.values() for x in values]
            results["pages"] = {
                "measured": True,
                "users": len(plans),
                "rounds": options.rounds,
                "per_page": {
                    path: {
                        "requests": len(values),
                        "p50_ms": percentile(values, 50) * 1000,
                        "p95_ms": percentile(values, 95) * 1000,
                    }
                    for path, values in latencies.items()
                },
                "p50_ms": percentile(every, 50) * 1000,
                "p95_ms": percentile(every, 95) * 1000,
                "target_p95_ms": PAGE_P95_TARGET_MS,
                "meets_target": percentile(every, 95) * 1000 <= PAGE_P95_TARGET_MS,
            }
        first, last = await pool.fetchrow(
            "SELECT min(ts), max(ts) FROM scans WHERE site_id = $1", sites[0]
        )
        window = urllib.parse.urlencode(
            {"since": first.isoformat(), "until": (last + dt.timedelta(seconds=1)).isoformat()}
        )
        export_plan = UserPlan(
            username=names[0],
            password=BENCH_PASSWORD,
            paths=(EXPORT.format(site=sites[0]) + "?" + window,),
        )
        missing = await _missing_page(base_url, export_plan)
        if missing is not None:
            results["export"] = {"measured": False, "why": missing}
        else:
            # Logged in first: an argon2id check takes 64 MiB for a moment, not the export's.
            cookies = await session_cookies(base_url, export_plan)
            url = base_url + export_plan.paths[0]
            async with client_process() as run, RssSampler() as rss:
                lines, size, seconds = await run(_export_process, url, cookies)
            results["export"] = {
                "measured": True,
                "rows": lines - 1,
                "bytes": size,
                "seconds": seconds,
                "rss_before_mib": rss.before / 2**20,
                "rss_peak_mib": rss.peak / 2**20,
                "rss_growth_mib": (rss.peak - rss.before) / 2**20,
            }
        feed = await hub_feed_latency(
            pool, root, base_url, browsers=options.users, scans=options.feed_scans_per_lane
        )
        results["hub_live_feed"] = _feed_result(feed)
    finally:
        await runner.cleanup()
    return results


# --------------------------------------------------------------------------- run


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    scale: float = 1.0
    days: int = 28
    users: int = 20
    rounds: int = 10
    feed_scans_per_lane: int = 25

    @property
    def rows(self) -> int:
        return max(1, round(FULL_ROWS * self.scale))

    @property
    def export_rows(self) -> int:
        return max(1, round(EXPORT_ROWS * self.scale))


async def run(root: Path, options: Options) -> dict[str, Any]:
    from suishen.central.db import DatabaseSettings, open_database  # noqa: PLC0415 - hub extra

    results: dict[str, Any] = {"scale": options.scale, "rows": options.rows}
    settings = DatabaseSettings(state_dir=root / "state", min_size=2, max_size=8)
    async with open_database(settings) as pool:
        generated = await generate_scans(pool, rows=options.rows, days=options.days)
        stored = await pool.fetchval("SELECT count(*) FROM scans")
        if stored != options.rows:
            raise RuntimeError(f"expected {options.rows} scans, found {stored}")
        results["generate"] = {
            "rows": generated.rows,
            "days": options.days,
            "sites": len(generated.sites),
            "seconds": generated.seconds,
            "rows_per_s": generated.rows_per_s,
        }
        results.update(await measure_hub(pool, root / "hub-feed", options, generated.sites))
    feed = await lane_display_latency(root / "site", scans_per_lane=options.feed_scans_per_lane)
    results["lane_display_feed"] = _feed_result(feed)
    return results


def _feed_result(feed: FeedLatency) -> dict[str, Any]:
    return {
        "scans": feed.scans,
        "decided": feed.decided,
        "events": feed.events,
        "expected": feed.expected,
        "p50_s": feed.p50,
        "p99_s": feed.p99,
        "max_s": max(feed.latencies_s, default=float("nan")),
        "target_p99_s": FEED_P99_TARGET_S,
        "meets_target": feed.events == feed.expected and feed.p99 <= FEED_P99_TARGET_S,
    }


def report(results: dict[str, Any]) -> None:
    generate = results["generate"]
    print_table(
        f"Web bench data: {generate['rows']:,} scans over {generate['days']} days, "
        f"{generate['sites']} sites (COPY)",
        ["step", "rows", "seconds", "rows/s"],
        [["COPY scans", generate["rows"], generate["seconds"], generate["rows_per_s"]]],
    )
    rows: list[list[object]] = []
    pages = results["pages"]
    if pages.get("measured"):
        for path, page in pages["per_page"].items():
            rows.append(
                [
                    f"page {path}",
                    f"p50 {page['p50_ms']:.1f} ms, p95 {page['p95_ms']:.1f} ms",
                    f"{page['requests']} requests",
                ]
            )
        verdict = "meets" if pages["meets_target"] else "MISSES"
        rows.append(
            [
                f"all pages, {pages['users']} users",
                f"p50 {pages['p50_ms']:.1f} ms, p95 {pages['p95_ms']:.1f} ms",
                f"target p95 <= {pages['target_p95_ms']:.0f} ms: {verdict}",
            ]
        )
    else:
        rows.append(["pages", "not measured", pages["why"]])
    export = results["export"]
    if export.get("measured"):
        rows.append(
            [
                "CSV export (streamed)",
                f"{export['rows']:,} rows in {export['seconds']:.1f} s",
                (
                    f"RSS {export['rss_before_mib']:.0f} -> peak "
                    f"{export['rss_peak_mib']:.0f} MiB (+{export['rss_growth_mib']:.1f})"
                ),
            ]
        )
    else:
        rows.append(["CSV export", "not measured", export["why"]])
    for key, label in (
        ("hub_live_feed", "hub live feed (scan -> dashboard)"),
        ("lane_display_feed", "lane display feed (decision -> tablet)"),
    ):
        feed = results.get(key)
        if feed is None:
            rows.append([label, "not measured", results["pages"].get("why", "")])
            continue
        verdict = "meets" if feed["meets_target"] else "MISSES"
        rows.append(
            [
                label,
                f"p50 {feed['p50_s'] * 1000:.1f} ms, p99 {feed['p99_s'] * 1000:.1f} ms",
                (
                    f"{feed['events']}/{feed['expected']} events, target p99 <= "
                    f"{feed['target_p99_s']:.0f} s: {verdict}"
                ),
            ]
        )
    print_table("Web bench", ["measure", "result", "note"], rows)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 10M scans, 1M exported")
    parser.add_argument("--days", type=int, default=28, help="days the scans spread over")
    parser.add_argument("--users", type=int, default=20, help="concurrent page users")
    parser.add_argument("--rounds", type=int, default=10, help="page rounds per user")
    parser.add_argument("--feed-scans", type=int, default=25, help="scans per lane (live feed)")
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.days < 1 or args.users < 1 or args.rounds < 1:
        parser.error("--scale must be > 0; --days, --users and --rounds >= 1")
    return Options(
        scale=args.scale,
        days=args.days,
        users=args.users,
        rounds=args.rounds,
        feed_scans_per_lane=max(1, args.feed_scans),
    )


def main(argv: Sequence[str] = (), *, write: bool = True) -> dict[str, Any]:
    """Run with ``argv`` (default: none, as `python -m bench` calls it); returns the results."""
    from suishen.logs import configure as configure_logs  # noqa: PLC0415

    options = parse_args(argv)
    configure_logs("warning")
    root = Path(tempfile.mkdtemp(prefix="suishen-bench-web-"))
    try:
        results = asyncio.run(run(root, options))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results)
    if write:
        path = write_results("web", results)
        print(f"wrote {path}")
    return results


__all__ = [
    "Generated",
    "Options",
    "RssSampler",
    "UserPlan",
    "client_process",
    "generate_scans",
    "lane_display_latency",
    "main",
    "page_latencies",
    "percentile",
    "scan_rows",
    "stream_export",
]

if __name__ == "__main__":
    main(sys.argv[1:])
