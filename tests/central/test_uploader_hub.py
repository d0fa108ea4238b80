"""The gateway's sync client against the REAL hub app (central/app.py gateway_app) on a real
PostgreSQL (tests/central/conftest.py), over mutual TLS on loopback.

Ends in the comparison per (gateway_id, seq) of the journal against the central tables:
every journal row is in exactly one central table exactly once, except the row the hub
rejected, which is quarantined in the journal and absent centrally.  Also: the hub down and
back on the same port while the gateway keeps journalling, an alert on the fast lane, and a
watchlist entry added at the hub reaching the gateway's lists by long-poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.central.app import gateway_app, serve
from suishen.central.store.lists import watchlist_add
from suishen.gateway.config import HubSettings
from suishen.gateway.journal import Journal, JournalConfig
from suishen.gateway.lists import Lists
from suishen.gateway.records import (
    AlertKind,
    AlertRaised,
    AlertRoute,
    Decision,
    Direction,
    PassageOutcomeKind,
    PassageRecorded,
    Person,
    ScanDecided,
    ScanFormat,
    Verdict,
    WatchLevel,
)
from suishen.protocol.reasons import Reason
from suishen.sync import pki
from suishen.sync.bundle_fetcher import BundleFetcher
from suishen.sync.hub_session import hub_session
from suishen.sync.uploader import Uploader
from tests.central.hubkit import SITE, person, register

GW = "gw-e2e-1"
WAIT_S = 20.0
PERSON = Person(
    person_key=person(1),
    nationality="CHN",
    minor=False,
    status="G",
    masked_name="张*明",
    masked_number="110***********002X",
)
ALERT = AlertRaised(
    kind=AlertKind.WATCHLIST,
    route=AlertRoute.POLICE,
    detail="watchlist hit",
    person_key=PERSON.person_key,
    level=WatchLevel.DENY,
)
CENTRAL_TABLES = ("scans", "passages", "alerts", "device_events")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> pki.PkiLayout:
    root = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(root, now=now)
    pki.issue_hub(root, now=now)
    pki.issue_gateway(root, GW, now=now)
    return layout


class Hub:
    """The real hub app on 127.0.0.1; stop() and start() again keep the port."""

    def __init__(self, pool: asyncpg.Pool, layout: pki.PkiLayout) -> None:
        self.pool, self.layout = pool, layout
        self.bundle_key = ed25519.Ed25519PrivateKey.generate()
        self.port = 0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = gateway_app(bundle_key=self.bundle_key, pool=self.pool, bundle_poll_s=1.0)
        self.runner, self.port = await serve(
            app, "127.0.0.1", self.port, pki.hub_ssl_context_for(self.layout)
        )

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def hub(db_pool: asyncpg.Pool, deployment: pki.PkiLayout) -> AsyncIterator[Hub]:
    await register(db_pool, GW, SITE, cert=deployment.gateway_cert(GW))
    running = Hub(db_pool, deployment)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    async with Journal(
        JournalConfig(path=tmp_path / "journal.sqlite3"),
        gateway_id=GW,
        site_id=SITE,
        hub_public_key=X25519PrivateKey.generate().public_key(),
    ) as opened:
        yield opened


def hub_settings(hub: Hub, layout: pki.PkiLayout) -> HubSettings:
    return HubSettings(
        url=hub.url,
        client_cert=layout.gateway_cert(GW),
        client_key=layout.gateway_key(GW),
        ca=layout.ca_cert,
        poll_s=0.01,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        long_poll_s=5,
    )


def scan(i: int, *, alerts: tuple[AlertRaised, ...] = ()) -> ScanDecided:
    return ScanDecided(
        ts=time.time(),
        site_id=SITE,
        lane_id="lane-1",
        direction=Direction.IN,
        format=ScanFormat.SSC1,
        decision=Decision(
            verdict=Verdict.DENY if alerts else Verdict.ALLOW,
            reason=Reason.WATCHLIST if alerts else None,
            alerts=alerts,
        ),
        person=PERSON,
        cti=f"{i:032x}",
        kid="AAAAAAAAAAA=",
        latency_us=900,
        identity_clear={"idt": "RIC", "idn": "11010519491231002X", "nm": "张三明"},
    )


def passage(scan_seq: int) -> PassageRecorded:
    return PassageRecorded(
        ts=time.time(),
        site_id=SITE,
        lane_id="lane-1",
        scan_seq=scan_seq,
        outcome=PassageOutcomeKind.PASSED,
        person_key=PERSON.person_key,
    )


async def journal_traffic(journal: Journal, scans: int, start: int = 0) -> None:
    """Scans, each followed by its passage; every 50th scan a watchlist hit; a device row."""
    for i in range(start, start + scans):
        alerts = (ALERT,) if i % 50 == 49 else ()
        seq = await journal.append(scan(i, alerts=alerts))
        if not alerts:
            await journal.append(passage(seq))
    await journal.append_device(ts=time.time(), lane_id="lane-1", device_id="gate", state="down")


async def wait_for(condition: Callable[[], Any], within: float = WAIT_S) -> float:
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 (polling another component's state)
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def central_seqs(pool: asyncpg.Pool) -> list[int]:
    """Every seq of the gateway in the central tables, with repetitions if there were any."""
    union = " UNION ALL ".join(
        f"SELECT seq FROM {table} WHERE gateway_id = $1" for table in CENTRAL_TABLES
    )
    rows = await pool.fetch(union, GW)
    return sorted(r["seq"] for r in rows)


def journal_seqs(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]


async def test_journal_equals_central_rows_through_an_outage(
    hub: Hub, journal: Journal, deployment: pki.PkiLayout, db_pool: asyncpg.Pool
) -> None:
    """~1,700 journal rows (scans, passages, alerts, device events) sync to the real hub; the
    hub goes down mid-way while the gateway keeps journalling, and comes back on the same
    port; a row the hub's validation rejects is quarantined.  Afterwards every journal seq but
    the quarantined one (a scan) is in exactly one central table exactly once."""
    await journal_traffic(journal, 600)
    with sqlite3.connect(journal.config.path) as db:  # a row the hub must refuse
        db.execute("UPDATE events SET reason = ?, verdict = 'deny' WHERE seq = 9", ("x" * 100,))
    settings = hub_settings(hub, deployment)
    session = hub_session(settings.ca, settings.client_cert, settings.client_key)
    uploader = Uploader(journal, session, settings, gateway_id=GW)
    task = asyncio.create_task(uploader.run())
    try:
        await wait_for(lambda: _true(journal.status().synced_seq == journal.status().last_seq))
        await hub.stop()
        await journal_traffic(journal, 300, start=600)
        await wait_for(lambda: _true(uploader.stats.hub_up is False))
        assert journal.status().synced_seq < journal.status().last_seq
        await hub.start()
        await journal_traffic(journal, 100, start=900)
        await wait_for(lambda: _true(journal.status().synced_seq == journal.status().last_seq))
    finally:
        uploader.stop()
        await task
        await session.close()
    quarantined = await journal.quarantined()
    assert [seq for seq, _why, _ts in quarantined] == [9]
    expected = [s for s in journal_seqs(journal.config.path) if s != 9]
    assert len(expected) > 1500
    assert await central_seqs(db_pool) == expected  # zero lost, zero duplicated
    high_water = await db_pool.fetchval("SELECT high_water FROM gateways WHERE gateway_id = $1", GW)
    assert high_water == journal.status().last_seq
    assert uploader.stats.rows_rejected == 1


async def _true(value: bool) -> bool:
    return value


async def test_alert_reaches_the_hub_within_a_second_and_is_stored_once(
    hub: Hub, journal: Journal, deployment: pki.PkiLayout, db_pool: asyncpg.Pool
) -> None:
    """A watchlist hit is in the central alerts table within a second of being journalled (the
    fast lane), and once only after the bulk upload carried it too."""
    settings = hub_settings(hub, deployment)
    session = hub_session(settings.ca, settings.client_cert, settings.client_key)
    uploader = Uploader(journal, session, settings, gateway_id=GW)
    task = asyncio.create_task(uploader.run())
    try:
        await asyncio.sleep(0.2)
        scan_seq = await journal.append(scan(1, alerts=(ALERT,)))

        async def alert_stored() -> bool:
            count = await db_pool.fetchval(
                "SELECT count(*) FROM alerts WHERE gateway_id = $1 AND seq = $2", GW, scan_seq + 1
            )
            return bool(count)

        took = await wait_for(alert_stored, within=5)
        assert took < 1.0
        await wait_for(lambda: _true(journal.status().synced_seq == scan_seq + 1))
    finally:
        uploader.stop()
        await task
        await session.close()
    assert await central_seqs(db_pool) == [scan_seq, scan_seq + 1]
    assert uploader.stats.alerts_sent == 1


async def test_watchlist_entry_reaches_the_gateway_by_long_poll(
    hub: Hub, deployment: pki.PkiLayout, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A watchlist entry added at the hub (in the database; NOTIFY) is installed in the
    gateway's lists within a few seconds (target: 15 s) and written as last-known-good."""
    lists = Lists(pinned_key=hub.bundle_key.public_key(), directory=tmp_path / "lists")
    settings = hub_settings(hub, deployment)
    session = hub_session(settings.ca, settings.client_cert, settings.client_key)
    fetcher = BundleFetcher(lists, session, settings, gateway_id=GW)
    task = asyncio.create_task(fetcher.run())
    try:
        await asyncio.sleep(0.5)  # the long-polls are waiting
        wanted = person(42)
        async with db_pool.acquire() as con:
            await watchlist_add(con, wanted, level="deny", route="police", reason="test")
        took = await wait_for(lambda: _true(lists.watch(wanted, time.time()) is not None))
        assert took < 5.0
        # Written as last-known-good right after the in-memory swap (in the install thread).
        saved = tmp_path / "lists" / "watchlist.bundle"
        await wait_for(lambda: _true(saved.exists()), within=5.0)
    finally:
        fetcher.stop()
        await task
        await session.close()


async def test_rows_out_of_the_clock_window_are_quarantined_with_one_clock_alert(
    hub: Hub, journal: Journal, deployment: pki.PkiLayout, db_pool: asyncpg.Pool
) -> None:
    """Two scans stamped in 2090 (a gateway clock gone wrong) among good ones: the real hub
    refuses them per row ('clock'), the uploader quarantines them, logs, and journals ONE
    clock alert, which reaches the hub's alerts table as kind 'clock' (the wire's and the
    SQL's alert-kind checks take it); every other row is stored."""
    far = dt.datetime(2090, 1, 1, tzinfo=dt.UTC).timestamp()
    seqs = [await journal.append(scan(0))]
    seqs += [await journal.append(dataclasses.replace(scan(i), ts=far + i)) for i in (1, 2)]
    seqs += [await journal.append(scan(3))]
    settings = hub_settings(hub, deployment)
    session = hub_session(settings.ca, settings.client_cert, settings.client_key)
    uploader = Uploader(journal, session, settings, gateway_id=GW)
    task = asyncio.create_task(uploader.run())
    try:
        await wait_for(
            lambda: db_pool.fetchval("SELECT count(*) = 1 FROM alerts WHERE kind = 'clock'")
        )
        await wait_for(lambda: _true(journal.status().synced_seq == journal.status().last_seq))
    finally:
        uploader.stop()
        await task
        await session.close()
    quarantined = await journal.quarantined()
    assert [seq for seq, _why, _ts in quarantined] == seqs[1:3]
    assert all("clock" in why for _seq, why, _ts in quarantined)
    assert uploader.stats.clock_refused == 2
    alert = await db_pool.fetchrow("SELECT route, detail, seq FROM alerts")
    assert (alert["route"], alert["seq"]) == ("staff", seqs[-1] + 1)
    assert "refused 2 rows for their time" in alert["detail"]
    assert await central_seqs(db_pool) == [seqs[0], seqs[3], seqs[-1] + 1]
