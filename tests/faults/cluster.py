"""The sync fault tests' rig and their final check (issue 5 item 8).

``Cluster``: real processes only.  PostgreSQL (tests/faults/postgres.py, one per session, a
database per test), one hub and N gateways (tests/faults/nodes.py), each gateway reaching the
hub through its own FaultProxy (tests/faults/proxy.py), so a fault can hit one link or all.
Registration and lists go through the hub's own CLI: every gateway at one building site, every
site's code issuer on the trust list, and a few people per gateway on the watchlist (level
notify: let in, alert raised) so that alerts travel both the bulk upload and the fast lane.

``compare(journal_paths, dsn)``: the final check.  Per (gateway_id, seq), every journal row of
kind scan / passage / alert / device is in the matching central table (scans, passages, alerts,
device_events) exactly once, with the journal's ts; and no central row lacks its journal row.
It returns a ``Comparison`` whose ``counts()`` is (lost, duplicated, extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import asyncpg

from tests.faults.nodes import (
    GatewayNode,
    HubLink,
    HubProcess,
    ScanDriver,
    open_journal,
    person,
    person_key_of,
)
from tests.faults.postgres import PostgresServer, free_port
from tests.faults.proxy import FaultProxy

# Journal kind -> the central table that holds it.
CENTRAL_TABLE = {
    "scan": "scans",
    "passage": "passages",
    "alert": "alerts",
    "device": "device_events",
}
TS_EPS_S = 2e-6  # journal ts is a float of seconds; central ts is microseconds


def stream(gateway_id: str, journal_id: str) -> str:
    """What a key's first part names: seqs count within one journal of a gateway (a row the
    hub holds without a journal id - from before journal ids - is the gateway's alone)."""
    return f"{gateway_id}/{journal_id}" if journal_id else gateway_id


# --------------------------------------------------------------------------- the final check


@dataclasses.dataclass(frozen=True, slots=True)
class JournalEntry:
    gateway_id: str
    seq: int
    ts: float
    kind: str


def read_journal(path: Path) -> tuple[str, list[JournalEntry], list[int]]:
    """(stream, every row of a syncable kind, quarantined seqs) of one journal file; the
    entries' gateway_id is the stream (gateway_id/journal_id)."""
    db = open_journal(path)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        gateway_id = stream(meta["gateway_id"], meta.get("journal_id", ""))
        rows = [
            JournalEntry(gateway_id, seq, ts, kind)
            for seq, ts, kind in db.execute("SELECT seq, ts, kind FROM events ORDER BY seq")
            if kind in CENTRAL_TABLE
        ]
        quarantined = [seq for (seq,) in db.execute("SELECT seq FROM quarantine ORDER BY seq")]
    finally:
        db.close()
    return gateway_id, rows, quarantined


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of compare().  Each list holds (stream, seq) keys (stream():
    gateway_id/journal_id).

    - lost: a journal row whose central table has no row for its key;
    - duplicated: a key held more than once centrally (twice in its table, or in two tables);
    - extra: a central row no journal row accounts for (unknown key, or a different kind);
    - mismatched: a key present once but with another ts than the journal's;
    - quarantined: journal rows the hub rejected (also counted in lost: none are expected).
    """

    lost: list[tuple[str, int]]
    duplicated: list[tuple[str, int]]
    extra: list[tuple[str, int]]
    mismatched: list[tuple[str, int]]
    quarantined: list[tuple[str, int]]
    journal_rows: int
    central_rows: int
    by_kind: dict[str, int]

    def counts(self) -> tuple[int, int, int]:
        """(lost, duplicated, extra)."""
        return len(self.lost), len(self.duplicated), len(self.extra)

    @property
    def exact(self) -> bool:
        return self.counts() == (0, 0, 0) and not self.mismatched

    def summary(self) -> str:
        def head(keys: list[tuple[str, int]]) -> str:
            return ", ".join(f"{g}#{s}" for g, s in keys[:10]) + (" ..." if len(keys) > 10 else "")

        return (
            f"journal rows {self.journal_rows} {dict(self.by_kind)}, central rows "
            f"{self.central_rows}; lost {len(self.lost)} [{head(self.lost)}], duplicated "
            f"{len(self.duplicated)} [{head(self.duplicated)}], extra {len(self.extra)} "
            f"[{head(self.extra)}], mismatched ts {len(self.mismatched)} "
            f"[{head(self.mismatched)}], quarantined {len(self.quarantined)}"
        )


async def central_rows(dsn: str) -> dict[str, list[tuple[str, int, dt.datetime]]]:
    """Every (stream, seq, ts) of each central table that gateways fill."""
    con = await asyncpg.connect(dsn)
    try:
        return {
            table: [
                (stream(r["gateway_id"], r["journal_id"]), r["seq"], r["ts"])
                for r in await con.fetch(f"SELECT gateway_id, journal_id, seq, ts FROM {table}")
            ]
            for table in CENTRAL_TABLE.values()
        }
    finally:
        await con.close()


async def compare(journal_paths: Iterable[Path], dsn: str) -> Comparison:
    """Every journal against the central tables, per (gateway_id/journal_id, seq)."""
    journal: dict[tuple[str, int], JournalEntry] = {}
    quarantined: list[tuple[str, int]] = []
    by_kind: Counter[str] = Counter()
    for path in journal_paths:
        gateway_id, rows, held = read_journal(path)
        for row in rows:
            journal[(row.gateway_id, row.seq)] = row
            by_kind[row.kind] += 1
        quarantined.extend((gateway_id, seq) for seq in held)
    central = await central_rows(dsn)
    held_at: dict[tuple[str, int], list[tuple[str, dt.datetime]]] = {}
    for table, rows in central.items():
        for gateway_id, seq, ts in rows:
            held_at.setdefault((gateway_id, seq), []).append((table, ts))
    lost, duplicated, extra, mismatched = [], [], [], []
    for key, row in sorted(journal.items()):
        copies = held_at.get(key, [])
        table = CENTRAL_TABLE[row.kind]
        in_table = [ts for t, ts in copies if t == table]
        if not in_table:
            lost.append(key)
        if len(copies) > 1:
            duplicated.append(key)
        if len(in_table) == 1 and abs(in_table[0].timestamp() - row.ts) > TS_EPS_S:
            mismatched.append(key)
    for key, copies in sorted(held_at.items()):
        row = journal.get(key)
        if row is None or all(t != CENTRAL_TABLE[row.kind] for t, _ in copies):
            extra.append(key)
    return Comparison(
        lost=lost,
        duplicated=duplicated,
        extra=extra,
        mismatched=mismatched,
        quarantined=sorted(quarantined),
        journal_rows=len(journal),
        central_rows=sum(len(rows) for rows in central.values()),
        by_kind=dict(by_kind),
    )


async def wait_synced(
    journal_paths: Sequence[Path], dsn: str, timeout_s: float, *, poll_s: float = 0.25
) -> Comparison:
    """Until compare() finds nothing lost (the backlog drained) or timeout_s passes; the last
    comparison either way."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await compare(journal_paths, dsn)
        if not result.lost or time.monotonic() > deadline:
            return result
        await asyncio.sleep(poll_s)


def backlog_json(nodes: Iterable[GatewayNode]) -> str:
    """Per gateway: (journal rows, sync cursor), for failure messages."""
    return json.dumps({n.gateway_id: n.journal_counts() for n in nodes})


# --------------------------------------------------------------------------- the whole rig


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SyncTuning:
    """[hub] settings of the test gateways.  Shorter than the defaults (backoff cap 30 s,
    request deadline 15 s) so that a scenario's recovery fits in seconds; the logic under
    test is the same."""

    backoff_initial_s: float = 0.2
    backoff_max_s: float = 2.0
    request_timeout_s: float = 3.0

    def toml(self) -> str:
        return (
            f"backoff_initial_s = {self.backoff_initial_s}\n"
            f"backoff_max_s = {self.backoff_max_s}\n"
            f"request_timeout_s = {self.request_timeout_s}\n"
        )


SITE_ID = "site-building"  # SimSite's site id for a building; every gateway here guards it


class Cluster:
    """PostgreSQL (shared, per-test database), one hub, and N gateways, each reaching the hub
    through its own FaultProxy (its [hub] url), so a fault can hit one gateway's link or all.
    Build with ``await Cluster.create(...)``; always ``await cluster.aclose()`` (the fixture
    does)."""

    def __init__(
        self, root: Path, postgres: PostgresServer, dsn: str, *, db_proxy: bool = False
    ) -> None:
        self.root = root
        self.postgres = postgres
        self.dsn = dsn  # what compare() and the CLI use: straight to PostgreSQL
        self.pki_dir = root / "pki"
        # db_proxy: the hub reaches PostgreSQL through a FaultProxy too (its DSN names it).
        self.db_proxy = FaultProxy(postgres.port, port=free_port()) if db_proxy else None
        hub_dsn = dsn
        if self.db_proxy is not None:
            hub_dsn = dsn.replace(f":{postgres.port}/", f":{self.db_proxy.port}/", 1)
            assert hub_dsn != dsn
        self.hub = HubProcess(root / "hub", hub_dsn, self.pki_dir)
        self.proxies: dict[str, FaultProxy] = {}
        self.nodes: list[GatewayNode] = []
        self.drivers: list[ScanDriver] = []
        self.pepper = secrets.token_bytes(32)
        self.watched: list[str] = []  # person keys on the watchlist

    @classmethod
    async def create(
        cls,
        root: Path,
        postgres: PostgresServer,
        dsn: str,
        *,
        gateways: int,
        rate_hz: float,
        tuning: SyncTuning | None = None,
        watched_per_gateway: int = 2,
        start_hub: bool = True,
        db_proxy: bool = False,
    ) -> Cluster:
        """Everything set up and started (hub unless ``start_hub=False``, proxies, gateways);
        scanning not yet (``start_scanning()``)."""
        cluster = cls(root, postgres, dsn, db_proxy=db_proxy)
        try:
            if cluster.db_proxy is not None:
                await cluster.db_proxy.start()
            await cluster._setup(gateways, rate_hz, tuning or SyncTuning(), watched_per_gateway)
            if start_hub:
                await cluster.hub.start()
            await asyncio.gather(*(node.start() for node in cluster.nodes))
        except BaseException:
            await cluster.aclose()
            raise
        return cluster

    async def _setup(
        self, gateways: int, rate_hz: float, tuning: SyncTuning, watched_per_gateway: int
    ) -> None:
        from suishen.sync.pki import init_ca, issue_gateway, issue_hub  # noqa: PLC0415

        now = dt.datetime.now(dt.UTC)
        init_ca(self.pki_dir, now=now)
        issue_hub(self.pki_dir, now=now)
        await self.hub.init_keys()
        ids = [f"gw-{n + 1}" for n in range(gateways)]
        for n, gateway_id in enumerate(ids):
            cert, key = issue_gateway(self.pki_dir, gateway_id, now=now)
            proxy = self.proxies[gateway_id] = await FaultProxy(self.hub.port).start()
            link = HubLink(
                url=proxy.url,
                ca=self.pki_dir / "ca.pem",
                client_cert=cert,
                client_key=key,
            )
            node = await GatewayNode.create(
                self.root / gateway_id,
                gateway_id,
                hub=link,
                pepper=self.pepper,
                hub_keys={"bundle": self.hub.bundle_public, "seal": self.hub.seal_public},
                extra_toml=tuning.toml(),
            )
            self.nodes.append(node)
            self.drivers.append(ScanDriver(node, rate_hz=rate_hz, first_person=1000 * n))
        # Registration and lists, through the hub's own CLI: each gateway at the site, each
        # site's code issuer on the trust list, a few people per gateway on the watchlist
        # (notify: let in, alert raised) so that alerts travel both lanes.
        jobs = [
            self.hub.cli("gateway", "add", gid, "--site", SITE_ID, "--kind", "building",
                         "--pki", str(self.pki_dir), "--dsn", self.dsn)
            for gid in ids
        ]  # fmt: skip
        await asyncio.gather(*jobs)
        for node in self.nodes:
            entry = node.site.root / "keys" / "issuer" / "trust_entry.json"
            await self.hub.cli("trust", "add", "--entry", str(entry), "--dsn", self.dsn)
        for node, driver in zip(self.nodes, self.drivers, strict=True):
            for index in range(driver.first_person, driver.first_person + watched_per_gateway):
                key = person_key_of(node, person(index))
                self.watched.append(key)
                await self.hub.cli(
                    "watchlist", "add", key, "--level", "notify", "--route", "staff",
                    "--reason", "fault-test", "--dsn", self.dsn,
                )  # fmt: skip

    # ----- links

    def proxy(self, node: GatewayNode) -> FaultProxy:
        return self.proxies[node.gateway_id]

    async def drop_all(self) -> int:
        return sum([await proxy.drop() for proxy in self.proxies.values()])

    async def refuse_all(self) -> None:
        for proxy in self.proxies.values():
            await proxy.refuse()

    def stall_all(self, *, up: bool = True, down: bool = True) -> None:
        for proxy in self.proxies.values():
            proxy.stall(up=up, down=down)

    async def resume_all(self, *, disarm: bool = True) -> None:
        for proxy in self.proxies.values():
            await proxy.resume(disarm=disarm)

    def bytes_up(self) -> int:
        return sum(proxy.bytes_up for proxy in self.proxies.values())

    # ----- scanning

    def start_scanning(self) -> None:
        for driver in self.drivers:
            driver.start()

    async def stop_scanning(self) -> None:
        for driver in self.drivers:
            await driver.stop()

    @property
    def journal_paths(self) -> list[Path]:
        return [node.journal_path for node in self.nodes]

    async def settle(self, timeout_s: float) -> tuple[Comparison, float]:
        """Stop scanning, let the last passages land, wait for every journal to reach the
        centre; the final comparison and the seconds the drain took."""
        await self.stop_scanning()
        await asyncio.sleep(0.5)  # passages follow their scans by the turnstile's delay
        started = time.monotonic()
        result = await wait_synced(self.journal_paths, self.dsn, timeout_s)
        return result, time.monotonic() - started

    async def backlog(self) -> int:
        """Rows journalled but not in the centre yet, all gateways."""
        return len((await compare(self.journal_paths, self.dsn)).lost)

    def logs(self) -> str:
        """The tails of every process log, for a failure message."""
        parts = [f"=== hub\n{self.hub.process.log_tail()}"]
        parts += [f"=== {n.gateway_id}\n{n.process.log_tail(30)}" for n in self.nodes]
        return "\n".join(parts)

    async def aclose(self) -> None:
        for driver in self.drivers:
            with contextlib.suppress(Exception):
                await driver.stop()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await node.aclose()
        with contextlib.suppress(Exception):
            await self.hub.aclose()
        for proxy in [*self.proxies.values(), self.db_proxy]:
            if proxy is not None:
                with contextlib.suppress(Exception):
                    await proxy.aclose()
