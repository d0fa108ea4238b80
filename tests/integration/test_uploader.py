"""The gateway's sync client against a strict protocol peer over real mutual TLS on loopback:
batching (1000 rows / batch interval), the cursor never passing what was sent, retries with
backoff (logged once down, once back), quarantine of refused rows (row-level and by splitting
a refused batch), 403, the alert fast lane, and signed bundles by long-poll.

The peer (tests/integration/hub_peer.py) validates batches with the real wire.parse_batch; the
end-to-end tests against the real hub app and PostgreSQL are in
tests/central/test_uploader_hub.py (they reuse that directory's PostgreSQL fixtures).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from structlog.testing import capture_logs

from suishen.demo.simsite import SimSite
from suishen.gateway.config import HubSettings, load_config
from suishen.gateway.journal import Journal, JournalConfig
from suishen.gateway.lists import Lists, WatchEntry, watchlist_body
from suishen.gateway.records import (
    AlertKind,
    AlertRaised,
    AlertRoute,
    Decision,
    Direction,
    Person,
    ScanDecided,
    ScanFormat,
    Verdict,
    WatchLevel,
)
from suishen.gateway.service import GatewayService
from suishen.protocol.bundles import seal_bundle
from suishen.protocol.codes import Identity
from suishen.protocol.reasons import Reason
from suishen.sync import pki
from suishen.sync.bundle_fetcher import BundleFetcher
from suishen.sync.hub_session import hub_session
from suishen.sync.uploader import MAX_SPLIT_REQUESTS, Uploader
from tests.integration.hub_peer import HubPeer

GW = "gw-sync-1"
SITE = "site-sync"
PERSON = Person(
    person_key="cd" * 32,
    nationality="CHN",
    minor=False,
    status="G",
    masked_name="张*明",
    masked_number="110***********002X",
)
WAIT_S = 10.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> pki.PkiLayout:
    root = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)  # TLS checks validity against the real clock
    layout = pki.init_ca(root, now=now)
    pki.issue_hub(root, now=now)
    pki.issue_gateway(root, GW, now=now)
    return layout


def settings(hub: HubPeer, layout: pki.PkiLayout, **overrides: Any) -> HubSettings:
    values: dict[str, Any] = {
        "url": hub.url,
        "client_cert": layout.gateway_cert(GW),
        "client_key": layout.gateway_key(GW),
        "ca": layout.ca_cert,
        "poll_s": 0.01,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "request_timeout_s": 5.0,
        "long_poll_s": 2,
    }
    values.update(overrides)
    return HubSettings(**values)


@pytest.fixture
async def hub(deployment: pki.PkiLayout) -> AsyncIterator[HubPeer]:
    peer = HubPeer(deployment)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    config = JournalConfig(path=tmp_path / "journal.sqlite3")
    async with Journal(
        config,
        gateway_id=GW,
        site_id=SITE,
        hub_public_key=X25519PrivateKey.generate().public_key(),
    ) as opened:
        yield opened


class Running:
    """An uploader (and its session) running as a task."""

    def __init__(self, uploader: Uploader, task: asyncio.Task[None]) -> None:
        self.uploader = uploader
        self.task = task


@pytest.fixture
async def start_uploader(
    journal: Journal, hub: HubPeer, deployment: pki.PkiLayout
) -> AsyncIterator[Callable[..., Awaitable[Uploader]]]:
    running: list[tuple[Uploader, asyncio.Task[None], Any]] = []

    async def start(**overrides: Any) -> Uploader:
        hub_settings = settings(hub, deployment, **overrides)
        session = hub_session(hub_settings.ca, hub_settings.client_cert, hub_settings.client_key)
        uploader = Uploader(journal, session, hub_settings, gateway_id=GW)
        running.append((uploader, asyncio.create_task(uploader.run()), session))
        return uploader

    yield start
    for uploader, task, session in running:
        uploader.stop()
        async with asyncio.timeout(WAIT_S):
            await task
        await session.close()


def scan(i: int, *, alerts: tuple[AlertRaised, ...] = (), ts: float | None = None) -> ScanDecided:
    deny = bool(alerts) and alerts[0].level is WatchLevel.DENY
    return ScanDecided(
        ts=time.time() if ts is None else ts,
        site_id=SITE,
        lane_id=f"lane-{i % 4}",
        direction=Direction.IN,
        format=ScanFormat.SSC1,
        decision=Decision(
            verdict=Verdict.DENY if deny else Verdict.ALLOW,
            reason=Reason.WATCHLIST if deny else None,
            alerts=alerts,
        ),
        person=PERSON,
        cti=f"{i:032x}",
        kid="AAAAAAAAAAA=",
        latency_us=100,
        identity_clear={"idt": "RIC", "idn": "11010519491231002X", "nm": "张三明"},
    )


WATCH_ALERT = AlertRaised(
    kind=AlertKind.WATCHLIST,
    route=AlertRoute.POLICE,
    detail="watchlist hit",
    person_key=PERSON.person_key,
    level=WatchLevel.DENY,
)


async def append(journal: Journal, count: int, start: int = 0) -> list[int]:
    return list(await asyncio.gather(*(journal.append(scan(start + i)) for i in range(count))))


async def wait_for(condition: Callable[[], bool], within: float = WAIT_S) -> float:
    """Wait until condition() holds; returns the seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (polling another component's state)
            await asyncio.sleep(0.005)
    return time.monotonic() - started


def tamper(journal: Journal, seq: int, **columns: Any) -> None:
    """Change a committed journal row behind the journal's back (a row the hub must refuse)."""
    with sqlite3.connect(journal.config.path, timeout=5) as db:
        sets = ", ".join(f"{name} = ?" for name in columns)
        db.execute(f"UPDATE events SET {sets} WHERE seq = ?", (*columns.values(), seq))


# --------------------------------------------------------------------------- batching


async def test_batches_hold_at_most_1000_rows(journal, hub, start_uploader) -> None:
    """2500 journalled rows go up as 1000 + 1000 + 500, every seq once, and the cursor ends
    on the last seq."""
    await append(journal, 2500)
    await start_uploader()
    await wait_for(lambda: journal.status().synced_seq == 2500)
    sizes = [len(r.seqs) for r in hub.ingest_requests()]
    assert sizes == [1000, 1000, 500]
    assert sorted(hub.rows) == list(range(1, 2501))
    assert hub.duplicates == 0
    assert await journal.backlog() == (0, None)


async def test_partial_batch_waits_for_the_interval_full_batch_goes_at_once(
    journal, hub, start_uploader
) -> None:
    """With batch_interval_s=1.5 a lone row is held about that long; 1000 rows are a full
    batch and go at once, without waiting for the interval."""
    await start_uploader(batch_interval_s=1.5)
    await append(journal, 1)
    took = await wait_for(lambda: 1 in hub.rows)
    assert 1.3 <= took <= 3.0
    await append(journal, 1000, start=1)
    took = await wait_for(lambda: len(hub.rows) == 1001)
    assert took < 1.0
    assert [len(r.seqs) for r in hub.ingest_requests()] == [1, 1000]


async def test_default_interval_sends_a_lone_row_within_about_200ms(
    journal, hub, start_uploader
) -> None:
    """With the defaults (200 ms) a single row reaches the hub in well under a second."""
    await start_uploader(batch_interval_s=0.2, poll_s=0.05)
    await wait_for(lambda: journal.status().last_seq == 0)
    await append(journal, 1)
    took = await wait_for(lambda: 1 in hub.rows)
    assert 0.15 <= took < 1.0


# --------------------------------------------------------------------------- cursor


async def test_cursor_never_passes_what_was_sent(journal, hub, start_uploader) -> None:
    """A hub that answers a high_water beyond the batch moves the cursor only to the last seq
    sent; later rows still get new seqs and are uploaded."""
    hub.high_water_bonus = 10_000
    await append(journal, 10)
    await start_uploader()
    await wait_for(lambda: journal.status().synced_seq == 10)
    await asyncio.sleep(0.1)
    assert journal.status().synced_seq == 10
    assert await append(journal, 5, start=10) == [11, 12, 13, 14, 15]
    await wait_for(lambda: journal.status().synced_seq == 15)
    assert sorted(hub.rows) == list(range(1, 16))


async def test_short_high_water_resends_the_rest_without_duplicates(
    journal, hub, start_uploader
) -> None:
    """A hub acknowledging less than the batch (high_water 4 of 10) gets the rest again; the
    cursor follows what the hub holds and nothing is stored twice."""
    hub.answers.append((200, {"high_water": 4, "inserted": 4, "duplicates": 0, "rejected": []}))
    await append(journal, 10)
    await start_uploader()
    await wait_for(lambda: journal.status().synced_seq == 10)
    requests = hub.ingest_requests()
    assert requests[0].seqs == list(range(1, 11))
    assert requests[1].seqs == list(range(5, 11))
    assert sorted(hub.rows) == list(range(5, 11))  # the forced answer stored nothing


# --------------------------------------------------------------------------- failures


async def test_hub_errors_retried_logged_once_down_once_back(journal, hub, start_uploader) -> None:
    """503s and 429 are retried with backoff; "hub unreachable" and "hub back" are each
    logged once; every row arrives once."""
    hub.answers.extend([(503, {"error": "busy"})] * 4 + [(429, {"error": "slow down"})])
    await append(journal, 20)
    with capture_logs() as logs:
        uploader = await start_uploader()
        await wait_for(lambda: journal.status().synced_seq == 20)
    events = [e["event"] for e in logs]
    assert events.count("hub unreachable") == 1
    assert events.count("hub back") == 1
    down = next(e for e in logs if e["event"] == "hub unreachable")
    assert down["gateway_id"] == GW
    assert sorted(hub.rows) == list(range(1, 21))
    assert uploader.stats.failures == 5
    assert uploader.stats.consecutive_failures == 0
    assert uploader.stats.hub_up is True
    assert uploader.stats.rows_uploaded == 20


async def test_hub_down_then_back_on_the_same_port(journal, hub, start_uploader) -> None:
    """Connection refused while the hub is stopped: the rows wait in the journal (backlog
    counted), and drain once the hub listens again."""
    await hub.stop()
    uploader = await start_uploader()
    await append(journal, 50)
    await wait_for(lambda: uploader.stats.consecutive_failures >= 3)
    assert uploader.stats.hub_up is False
    assert journal.status().synced_seq == 0
    count, oldest = await journal.backlog()
    assert count == 50
    assert oldest is not None
    await hub.start()
    await wait_for(lambda: journal.status().synced_seq == 50)
    assert sorted(hub.rows) == list(range(1, 51))
    # The cursor moves before the stats are updated: wait for them rather than race them.
    await wait_for(lambda: uploader.stats.last_success_at is not None)


async def test_backoff_delays_grow_and_stay_under_the_cap(journal, hub, start_uploader) -> None:
    """With initial 0.05 s and cap 0.2 s, retries against a failing hub come no faster than
    the jitter allows on average and never more than the cap (+ slack) apart."""
    hub.answers.extend([(500, {"error": "boom"})] * 12)
    await append(journal, 1)
    await start_uploader(backoff_initial_s=0.05, backoff_max_s=0.2, batch_interval_s=0.01)
    await wait_for(lambda: journal.status().synced_seq == 1)
    times = [r.at for r in hub.ingest_requests()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 12
    assert max(gaps) < 0.2 + 0.15
    # Full jitter: mean delay is half the ceiling; 10 of the gaps had the cap 0.2 s.
    assert sum(gaps) / len(gaps) > 0.03


async def test_row_rejected_by_the_hub_is_quarantined(journal, hub, start_uploader) -> None:
    """A malformed row (reason longer than the wire allows) is rejected by the hub's row
    validation, quarantined with the hub's reason; the rest is stored and the cursor passes."""
    await append(journal, 10)
    tamper(journal, 4, verdict="deny", reason="x" * 100)
    with capture_logs() as logs:
        uploader = await start_uploader()
        await wait_for(lambda: journal.status().synced_seq == 10)
    text = repr(logs)
    assert PERSON.person_key not in text  # no personal data in the logs
    assert PERSON.masked_name not in text
    assert sorted(hub.rows) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    quarantined = await journal.quarantined()
    assert [(seq, "reason" in why) for seq, why, _ts in quarantined] == [(4, True)]
    assert uploader.stats.rows_rejected == 1
    assert uploader.stats.rows_uploaded == 9
    assert await journal.backlog() == (0, None)


@pytest.mark.parametrize("hint", [True, False], ids=["row-named", "no-row-named"])
async def test_refused_batch_is_split_to_quarantine_the_offending_row(
    journal, hub, start_uploader, hint: bool
) -> None:
    """A whole batch refused with 400 because of seq 37 of 100: the uploader splits it (at the
    named row, else by halves), quarantines only seq 37 with the hub's error, delivers the
    other 99 and goes on; without the hint it needs about 2*log2(100) requests."""
    hub.poison = {37}
    hub.hint_row = hint
    await append(journal, 100)
    with capture_logs() as logs:
        await start_uploader()
        await wait_for(lambda: journal.status().synced_seq == 100)
    assert sorted(hub.rows) == [s for s in range(1, 101) if s != 37]
    (quarantined,) = await journal.quarantined()
    assert quarantined[0] == 37
    assert "poisoned" in quarantined[1]
    requests = hub.ingest_requests()
    assert len(requests) <= (4 if hint else 16)
    refused = [e for e in logs if e["event"] == "row refused by the hub; quarantined"]
    assert [e["seq"] for e in refused] == [37]
    await append(journal, 3, start=100)
    await wait_for(lambda: journal.status().synced_seq == 103)


async def test_too_large_batch_is_split_until_the_hub_takes_it(
    journal, hub, start_uploader
) -> None:
    """A hub taking at most 300 rows answers 413 to a 1000-row batch; the halves (500, 250..)
    go until accepted; no row is quarantined."""
    hub.max_rows = 300
    await append(journal, 1000)
    uploader = await start_uploader()
    await wait_for(lambda: journal.status().synced_seq == 1000)
    assert sorted(hub.rows) == list(range(1, 1001))
    assert await journal.quarantined() == []
    assert uploader.stats.rows_rejected == 0
    assert {413, 200} == {r.status for r in hub.ingest_requests()}


@pytest.mark.parametrize("status", [400, 409, 422])
async def test_any_refusing_4xx_quarantines_instead_of_retrying(
    journal, hub, start_uploader, status: int
) -> None:
    """A hub refusing every request with a 4xx that names no row (400, 409, 422): the uploader
    splits each batch a bounded number of times, then quarantines with the hub's error instead
    of resending forever; 200 rows cost at most MAX_SPLIT_REQUESTS + 1 requests, and rows
    journalled afterwards are delivered."""
    hub.answers.extend([(status, {"error": "refused by policy", "row": None})] * 1000)
    await append(journal, 200)
    uploader = await start_uploader(batch_rows=200)
    await wait_for(lambda: uploader.stats.rows_rejected == 200)
    quarantined = await journal.quarantined()
    assert [seq for seq, _why, _ts in quarantined] == list(range(1, 201))
    assert all(f"({status})" in why and "refused by policy" in why for _s, why, _t in quarantined)
    assert len(hub.ingest_requests()) <= MAX_SPLIT_REQUESTS + 1
    hub.answers.clear()
    await append(journal, 3, start=200)
    await wait_for(lambda: journal.status().synced_seq == 203)
    assert sorted(hub.rows) == [201, 202, 203]


@pytest.mark.parametrize("status", [500, 502, 504, 408])
async def test_5xx_and_timeouts_are_retried_never_quarantined(
    journal, hub, start_uploader, status: int
) -> None:
    """5xx (and 408) answers are the hub's trouble, not the batch's: the same rows are resent
    with backoff until taken; nothing is quarantined or split."""
    hub.answers.extend([(status, {"error": "trouble"})] * 3)
    await append(journal, 10)
    uploader = await start_uploader()
    await wait_for(lambda: journal.status().synced_seq == 10)
    assert await journal.quarantined() == []
    assert sorted(hub.rows) == list(range(1, 11))
    assert [len(r.seqs) for r in hub.ingest_requests()] == [10, 10, 10, 10]
    assert uploader.stats.failures == 3


async def test_forbidden_keeps_the_journal_and_backs_off_long(journal, hub, start_uploader) -> None:
    """403 (certificate binding): logged as an error, nothing is quarantined or acknowledged,
    the next attempt waits forbidden_backoff_s; once the hub accepts, everything arrives."""
    hub.answers.extend([(403, {"error": "this certificate is for another gateway", "row": None})])
    await append(journal, 5)
    with capture_logs() as logs:
        uploader = await start_uploader(forbidden_backoff_s=1.0)
        await wait_for(lambda: uploader.stats.forbidden)
        await asyncio.sleep(0.5)
        assert len(hub.ingest_requests()) == 1
        assert journal.status().synced_seq == 0
        await wait_for(lambda: journal.status().synced_seq == 5, within=3)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1
    assert "403" in errors[0]["event"]
    assert await journal.quarantined() == []
    times = [r.at for r in hub.ingest_requests()]
    assert times[1] - times[0] >= 0.95
    assert uploader.stats.forbidden is False


async def test_a_refused_gateway_recovers_within_seconds_and_says_when_it_retries(
    journal, hub, start_uploader
) -> None:
    """With the default settings, a gateway the hub refuses (not yet registered: `hub gateway
    add` comes a little later) retries on a short schedule, which its stats (and /status)
    show as the next attempt's time; once the hub accepts, the backlog arrives within seconds,
    not after the 300 s wait it had before. The refusal is logged once, not per attempt."""
    defaults = HubSettings(url=hub.url, client_cert=Path("c"), client_key=Path("k"), ca=Path("a"))
    refusal = (403, {"error": "unknown gateway", "row": None})
    hub.answers.extend([refusal, refusal])
    await append(journal, 5)
    with capture_logs() as logs:
        uploader = await start_uploader(forbidden_backoff_s=defaults.forbidden_backoff_s)
        await wait_for(lambda: uploader.stats.forbidden)
        shown = uploader.stats.as_dict()
        assert shown["next_attempt_in_s"] is not None
        assert 0 < shown["next_attempt_in_s"] <= defaults.forbidden_backoff_s
        assert dt.datetime.fromisoformat(shown["next_attempt_at"]) > dt.datetime.now(dt.UTC)
        await wait_for(lambda: journal.status().synced_seq == 5, within=2.5 * 5.0)
    assert len(hub.ingest_requests()) == 3
    assert [e["log_level"] for e in logs if "403" in e["event"]] == ["error"]
    assert uploader.stats.as_dict()["next_attempt_at"] is None


# --------------------------------------------------------------------------- fast lane


async def test_alert_reaches_the_hub_within_a_second_despite_a_backlog(
    journal, hub, start_uploader
) -> None:
    """While the bulk lane is stuck behind a slow hub ingest (3 s per batch), an alert row is
    posted to /v1/alerts within a second; later the bulk upload carries it too and the hub
    holds it once (dedup by seq); the cursor still only follows the bulk batches."""
    hub.ingest_delay_s = 3.0
    await append(journal, 200)
    uploader = await start_uploader(request_timeout_s=10)
    await asyncio.sleep(0.3)  # the bulk lane is now waiting on the slow hub
    seq = await journal.append(scan(999, alerts=(WATCH_ALERT,)))
    alert_seq = seq + 1
    took = await wait_for(lambda: alert_seq in hub.alerts, within=2)
    assert took < 1.0
    assert hub.alerts[alert_seq]["kind"] == "alert"
    assert journal.status().synced_seq < alert_seq
    hub.ingest_delay_s = 0
    await wait_for(lambda: journal.status().synced_seq == alert_seq, within=WAIT_S)
    assert alert_seq in hub.rows
    assert uploader.stats.alerts_sent == 1


async def test_fast_lane_retries_and_leaves_failed_alerts_to_the_bulk_lane(
    journal, hub, start_uploader
) -> None:
    """A fast-lane POST that fails with 503 is retried; the alert arrives once at each
    endpoint and the bulk lane delivers it regardless. (The bulk lane is held back for a
    second here: an alert it delivers first is dropped from the fast lane, by design.)"""
    hub.alert_answers.extend([503, 503])
    uploader = await start_uploader(batch_interval_s=1.0)
    # The fast lane takes alerts journalled after it starts (older ones go with the bulk
    # upload): give it a moment to take its starting point first.
    await asyncio.sleep(0.2)
    seq = await journal.append(scan(1, alerts=(WATCH_ALERT,)))
    await wait_for(lambda: seq + 1 in hub.alerts)
    await wait_for(lambda: journal.status().synced_seq == seq + 1)
    assert seq + 1 in hub.rows
    assert uploader.stats.alerts_sent == 1


# --------------------------------------------------------------------------- shutdown


async def test_flush_is_best_effort_within_its_deadline(
    journal, hub, deployment: pki.PkiLayout
) -> None:
    """flush() uploads what is there; against a hub that does not answer it returns after the
    deadline with the rows still in the journal."""
    hub_settings = settings(hub, deployment)
    session = hub_session(hub_settings.ca, hub_settings.client_cert, hub_settings.client_key)
    try:
        uploader = Uploader(journal, session, hub_settings, gateway_id=GW)
        await append(journal, 1500)
        assert await uploader.flush(5.0) == 0
        assert sorted(hub.rows) == list(range(1, 1501))
        hub.ingest_delay_s = 5.0
        await append(journal, 10, start=1500)
        started = time.monotonic()
        assert await uploader.flush(0.3) == 10
        assert time.monotonic() - started < 1.0
    finally:
        await session.close()


# --------------------------------------------------------------------------- bundles


@pytest.fixture
def bundle_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def watch_bundle(key: ed25519.Ed25519PrivateKey, version: int, keys: list[str]) -> bytes:
    body = watchlist_body(
        (k, WatchEntry(level=WatchLevel.DENY, route=AlertRoute.POLICE, reason="test")) for k in keys
    )
    return seal_bundle(
        kind="watchlist", version=version, issued_at=int(time.time()), body=body, key=key
    )


@pytest.fixture
async def fetcher_for(
    hub: HubPeer, deployment: pki.PkiLayout, tmp_path: Path
) -> AsyncIterator[Callable[[Lists], BundleFetcher]]:
    running: list[tuple[BundleFetcher, asyncio.Task[None]]] = []
    hub_settings = settings(hub, deployment, backoff_initial_s=0.05, backoff_max_s=0.2)
    session = hub_session(hub_settings.ca, hub_settings.client_cert, hub_settings.client_key)

    def start(lists: Lists) -> BundleFetcher:
        fetcher = BundleFetcher(lists, session, hub_settings, gateway_id=GW)
        running.append((fetcher, asyncio.create_task(fetcher.run())))
        return fetcher

    yield start
    for fetcher, task in running:
        fetcher.stop()
        async with asyncio.timeout(WAIT_S):
            await task
    await session.close()


async def test_new_watchlist_reaches_the_gateway_at_once_by_long_poll(
    hub, fetcher_for, bundle_key, tmp_path: Path
) -> None:
    """A watchlist published while the gateway's long-poll is waiting is installed (and
    written as last-known-good) well within a second; the next poll asks after the new
    version."""
    lists = Lists(pinned_key=bundle_key.public_key(), directory=tmp_path / "lists")
    fetcher = fetcher_for(lists)
    await wait_for(lambda: ("watchlist", 0) in hub.bundle_requests)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await hub.publish("watchlist", 1, watch_bundle(bundle_key, 1, ["ab" * 32]))
    await wait_for(lambda: lists.version("watchlist") == 1, within=2)
    assert time.monotonic() - started < 1.0
    assert lists.watch("ab" * 32, time.time()) is not None
    assert (tmp_path / "lists" / "watchlist.bundle").exists()
    await wait_for(lambda: ("watchlist", 1) in hub.bundle_requests)
    assert fetcher.stats["watchlist"].installed == 1


async def test_badly_signed_bundle_is_refused_and_last_known_good_stays(
    hub, fetcher_for, bundle_key, tmp_path: Path
) -> None:
    """A bundle signed by another key is refused (logged with the problem), the installed list
    stays; a good newer bundle afterwards is installed."""
    lists = Lists(pinned_key=bundle_key.public_key(), directory=tmp_path / "lists")
    await hub.publish("watchlist", 1, watch_bundle(bundle_key, 1, ["ab" * 32]))
    with capture_logs() as logs:
        fetcher = fetcher_for(lists)
        await wait_for(lambda: lists.version("watchlist") == 1)
        rogue = ed25519.Ed25519PrivateKey.generate()
        await hub.publish("watchlist", 2, watch_bundle(rogue, 2, ["ef" * 32]))
        await wait_for(lambda: fetcher.stats["watchlist"].refused >= 1)
    refused = [e for e in logs if e["event"].startswith("bundle refused")]
    assert refused[0]["problem"] == "bad_signature"
    assert refused[0]["list"] == "watchlist"
    assert lists.version("watchlist") == 1
    assert lists.watch("ab" * 32, time.time()) is not None
    assert lists.watch("ef" * 32, time.time()) is None
    await hub.publish("watchlist", 3, watch_bundle(bundle_key, 3, ["ef" * 32]))
    await wait_for(lambda: lists.version("watchlist") == 3)
    assert lists.watch("ef" * 32, time.time()) is not None


async def test_bundle_poll_survives_the_hub_going_away(
    hub, fetcher_for, bundle_key, tmp_path: Path
) -> None:
    """With the hub stopped the polls fail and back off; when it is back, a bundle published
    meanwhile is fetched."""
    lists = Lists(pinned_key=bundle_key.public_key(), directory=tmp_path / "lists")
    await hub.stop()
    fetcher = fetcher_for(lists)
    await wait_for(lambda: fetcher.stats["roster"].failures >= 2)
    await hub.publish("watchlist", 5, watch_bundle(bundle_key, 5, ["ab" * 32]))
    await hub.start()
    await wait_for(lambda: lists.version("watchlist") == 5)


# --------------------------------------------------------------------------- the daemon


async def test_gateway_service_syncs_and_reports_on_status_and_metrics(
    tmp_path: Path, hub: HubPeer, deployment: pki.PkiLayout
) -> None:
    """A whole gateway (simulated site, real drivers) with a [hub] section: a scan's rows reach
    the hub, a watchlist published at the hub is installed, /status and /metrics report the
    backlog and the upload counters, and stop() ends everything (exit without error)."""
    gateway_id = "gw-building"  # SimSite's gateway id
    cert, key = pki.issue_gateway(deployment.root, gateway_id, now=dt.datetime.now(dt.UTC))
    hub_toml = (
        f'[hub]\nurl = "{hub.url}"\nclient_cert = "{cert}"\nclient_key = "{key}"\n'
        f'ca = "{deployment.ca_cert}"\npoll_s = 0.01\nlong_poll_s = 2\nshutdown_flush_s = 1.0\n'
    )
    site = await SimSite.create(tmp_path / "site", extra_toml=hub_toml)
    try:
        service = GatewayService(load_config(site.config_path), environ=site.environ)
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(WAIT_S):
                await service.wait_ready()
            await wait_for(lambda: _devices_up(service))
            code = site.code(
                Identity(idt="RIC", idn="11010519491231002X", nat="CHN", nm="张三明",
                         dob="1949-12-31", st="G"),
                iat=int(time.time()) - 5,
            )  # fmt: skip
            await site.scan("in-1", code)
            await wait_for(lambda: any(r["kind"] == "scan" for r in hub.rows.values()))
            await hub.publish("watchlist", 7, watch_bundle(site.bundle_key, 7, ["ab" * 32]))
            await wait_for(lambda: service.lists.version("watchlist") == 7)
            await wait_for(lambda: service.journal.status().synced_seq >= 2)  # scan + passage
            await asyncio.sleep(1.1)  # housekeeping refreshes the backlog once a second
            port = service.http_port
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/status") as response:
                    status = await response.json()
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    metrics = await response.text()
        finally:
            service.stop()
            async with asyncio.timeout(WAIT_S):
                await task
    finally:
        await site.aclose()
    upload = status["sync"]["upload"]
    assert upload["hub_up"] is True
    assert upload["rows_uploaded"] >= 2
    assert upload["consecutive_failures"] == 0
    assert status["sync"]["lists"]["watchlist"]["installed"] == 1
    assert status["journal"]["backlog_oldest_age_s"] is None  # nothing left unsynced
    assert "suishen_sync_rows_uploaded_total " in metrics
    expiry = re.search(r'suishen_certificate_expiry_seconds\{cert="client"\} (\S+)', metrics)
    assert expiry is not None and float(expiry.group(1)) > 30 * 86400  # a fresh certificate
    assert "suishen_sync_hub_up 1" in metrics
    assert 'suishen_bundles_installed_total{list="watchlist"} 1' in metrics
    assert "suishen_journal_backlog_rows 0" in metrics


def _devices_up(service: GatewayService) -> bool:
    states = [d["state"] for lane in service.status()["lanes"] for d in lane["devices"].values()]
    return bool(states) and all(state == "connected" for state in states)
