"""Site operations end to end (issue 13): the hub stores a site's hours or an emergency command,
signs the bundle, and a gateway's lists take it: a roster group's profile from the hub decides
outside_hours a minute before and after its window; the hub's emergency command reaches the
gateway's fetcher over mutual TLS and is applied once, never again after a restart, and never
from another site's command."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.bundle_service import BundleService
from suishen.central.store.lists import roster_add
from suishen.central.store.site_ops import (
    publish_calendar,
    set_site_hours,
    set_worker_group,
    site_emergency,
)
from suishen.gateway.hours import GatewayHours
from suishen.gateway.hub_commands import HubEmergency
from suishen.gateway.lists import Lists
from suishen.gateway.policy import LaneInfo, SiteRules, Subject, decide
from suishen.gateway.records import Direction, ScanFormat, SiteKind
from suishen.gateway.state import SiteState
from suishen.protocol.errors import BundleError
from suishen.protocol.time_profiles import bundled_calendar, parse_profile
from suishen.sync.bundle_fetcher import BundleFetcher

from .hubkit import OTHER_SITE, SITE, person, register
from .test_gateway_api import Hub
from .test_site_ops import listening_hub

ZONE = "Asia/Shanghai"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
HOURS = {
    "time_profiles": {"day": {d: ["06:00-20:00"] for d in WEEKDAYS}},
    "hours": {"groups": {"crew": "day"}},
}
CALENDAR = {
    "version": 2099001,
    "region": "CN",
    "holidays": ["2027-10-01"],
    "workdays": ["2027-10-09"],
}


def local(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(ZONE)).timestamp()


def hours(**config: Any) -> GatewayHours:
    return GatewayHours(
        profiles=config.get("profiles", {}),
        groups=config.get("groups", {}),
        calendar=bundled_calendar(),
        calendar_source="shipped",
        timezone=ZONE,
    )


def verdict(lists: Lists, gateway_hours: GatewayHours, when: str) -> tuple[str, str | None]:
    """The policy's decision for worker 1 entering at ``when`` (site local time)."""
    snapshot = gateway_hours.snapshot(lists)
    lane = LaneInfo(
        site_id=SITE,
        kind=SiteKind.CONSTRUCTION,
        lane_id="in-1",
        direction=Direction.IN,
        group_hours=snapshot.groups,
    )
    decision = decide(
        Subject(format=ScanFormat.SSC1, person_key=person(1), status="G", cti="c1"),
        lane=lane,
        rules=SiteRules(),
        state=SiteState(site_id=SITE, kind=SiteKind.CONSTRUCTION),
        lists=lists,
        now=local(when),
    )
    return decision.verdict.value, None if decision.reason is None else decision.reason.value


@pytest.fixture
async def hub(db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Hub]:
    async with listening_hub(db_pool, tmp_path) as running:
        yield running


@pytest.fixture
async def bundles(db_pool: asyncpg.Pool) -> Any:
    service = BundleService(db_pool, ed25519.Ed25519PrivateKey.generate(), poll_s=60)
    await service.refresh()
    return service


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2027-12-06T05:59:00", ("deny", "outside_hours")),  # Monday, a minute before
        ("2027-12-06T06:00:00", ("allow", None)),
        ("2027-12-06T19:59:00", ("allow", None)),
        ("2027-12-06T20:00:00", ("deny", "outside_hours")),  # the window's end
        ("2027-12-06T00:00:00", ("deny", "outside_hours")),  # midnight
        ("2027-12-05T12:00:00", ("deny", "outside_hours")),  # a Sunday
        ("2027-10-09T12:00:00", ("allow", None)),  # the make-up Saturday (calendar bundle)
        ("2027-10-01T12:00:00", ("deny", "outside_hours")),  # National Day (calendar bundle)
    ],
)
async def test_a_hub_group_profile_decides_at_the_gate(
    db_pool: asyncpg.Pool, bundles: BundleService, tmp_path: Path, when: str, expected: tuple
) -> None:
    """`hub site hours` + a worker's group + a published calendar -> signed roster and
    calendar bundles -> the gateway's lists -> the policy: the crew's hours hold at each
    boundary, on the make-up working day and on a holiday."""
    await register(db_pool, "gw-a", kind="construction")
    async with db_pool.acquire() as con:
        await roster_add(con, SITE, person(1))
        await set_site_hours(con, SITE, HOURS, actor="ops")
        await set_worker_group(con, SITE, person(1), "crew", actor="ops")
        await publish_calendar(con, CALENDAR, actor="ops")
    await bundles.refresh()
    lists = Lists(pinned_key=bundles._key.public_key(), directory=tmp_path, site_id=SITE)
    for kind in ("roster", "calendar"):
        signed = await bundles.get(kind, SITE)
        assert signed is not None
        lists.install(kind, signed.data)
    assert verdict(lists, hours(), when) == expected


async def test_the_config_wins_a_name_clash(
    db_pool: asyncpg.Pool, bundles: BundleService, tmp_path: Path
) -> None:
    """The gateway's own [hours] groups entry for the crew (an all-week profile) wins over the
    hub's; without it the hub's profile denies on a Sunday."""
    await register(db_pool, "gw-a", kind="construction")
    async with db_pool.acquire() as con:
        await roster_add(con, SITE, person(1))
        await set_site_hours(con, SITE, HOURS, actor="ops")
        await set_worker_group(con, SITE, person(1), "crew", actor="ops")
    await bundles.refresh()
    lists = Lists(pinned_key=bundles._key.public_key(), directory=tmp_path, site_id=SITE)
    signed = await bundles.get("roster", SITE)
    assert signed is not None
    lists.install("roster", signed.data)
    sunday = "2027-12-05T12:00:00"
    assert verdict(lists, hours(), sunday) == ("deny", "outside_hours")
    always = parse_profile(
        "always", {d: ["00:00-24:00"] for d in (*WEEKDAYS, "sat", "sun")}, field="p"
    )
    config = hours(profiles={"always": always}, groups={"crew": "always"})
    assert verdict(lists, config, sunday) == ("allow", None)


# --------------------------------------------------------------------------- emergency


@dataclasses.dataclass
class RecordingEmergency:
    """Records each declare/end the fetcher's path makes (and keeps the state as Emergency
    does), to count applications exactly; the real Emergency takes a hub bundle at a running
    gateway in tests/integration/test_gateway_site_bundles.py."""

    active: bool = False
    calls: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)

    async def declare(self, *, source: Any, actor: str, note: str = "") -> bool:
        self.calls.append(("declare", str(source), actor, note))
        changed, self.active = not self.active, True
        return changed

    async def end(self, *, source: Any, actor: str, note: str = "") -> bool:
        self.calls.append(("end", str(source), actor, note))
        changed, self.active = self.active, False
        return changed


@dataclasses.dataclass(frozen=True)
class Settings:
    url: str
    long_poll_s: float = 2.0
    request_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 0.5
    batch_rows: int = 1000
    batch_interval_s: float = 0.2
    poll_s: float = 1.0
    alerts_fast_lane: bool = False
    forbidden_backoff_s: float = 1.0


async def fetch_emergency(
    hub: Hub, lists: Lists, emergency: RecordingEmergency, *, until: int, run_s: float = 0.0
) -> BundleFetcher:
    """Run a gateway's fetcher for the emergency kind until ``lists`` holds ``until`` (then
    ``run_s`` seconds more)."""
    loop, installed = asyncio.get_running_loop(), asyncio.Event()
    lists.subscribe(lambda _kind: loop.call_soon_threadsafe(installed.set))
    async with hub.client("gw-a") as session:
        fetcher = BundleFetcher(
            lists,
            session,
            Settings(url=hub.url),
            gateway_id="gw-a",
            kinds=("emergency",),
            installers={"emergency": HubEmergency(lists, emergency).install},
        )
        task = asyncio.create_task(fetcher.run())
        try:
            async with asyncio.timeout(10):
                while lists.version("emergency") < until:
                    await installed.wait()
                    installed.clear()
            await asyncio.sleep(run_s)
        finally:
            fetcher.stop()
            await task
    return fetcher


async def test_the_hubs_emergency_command_is_applied_once(
    hub: Hub, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """`hub site emergency SITE on` reaches the gateway's fetcher and is declared (source hub,
    the hub user, the note); a command for another site is not applied; after a restart (a
    new Lists on the same directory) the command held is not applied again; `off` ends it."""
    await register(db_pool, "gw-a")
    await register(db_pool, "gw-b", OTHER_SITE)
    async with db_pool.acquire() as con:
        version = await site_emergency(con, SITE, active=True, by="chief", note="fire B1")
    emergency = RecordingEmergency()
    lists = Lists(pinned_key=hub.key.public_key(), directory=tmp_path, site_id=SITE)
    await fetch_emergency(hub, lists, emergency, until=version)
    assert emergency.calls == [("declare", "hub", "chief", "fire B1")]

    async with db_pool.acquire() as con:
        await site_emergency(con, OTHER_SITE, active=False, by="chief")
    restarted = Lists(pinned_key=hub.key.public_key(), directory=tmp_path, site_id=SITE)
    assert "emergency" not in restarted.load()
    assert restarted.version("emergency") == version
    fetcher = await fetch_emergency(hub, restarted, emergency, until=version, run_s=1.5)
    assert emergency.calls == [("declare", "hub", "chief", "fire B1")]  # nothing again
    assert fetcher.stats["emergency"].installed == 0

    async with db_pool.acquire() as con:
        off = await site_emergency(con, SITE, active=False, by="chief", note="all clear")
    await fetch_emergency(hub, restarted, emergency, until=off)
    assert emergency.calls[-1] == ("end", "hub", "chief", "all clear")
    assert not emergency.active


async def test_an_emergency_bundle_for_another_site_is_refused(
    hub: Hub, db_pool: asyncpg.Pool, bundles: BundleService, tmp_path: Path
) -> None:
    """A validly signed emergency bundle for another site (or an older one) is refused:
    nothing applied, the version held stays."""
    await register(db_pool, "gw-b", OTHER_SITE)
    await register(db_pool, "gw-a")
    async with db_pool.acquire() as con:
        await site_emergency(con, OTHER_SITE, active=True, by="chief")
    await bundles.refresh()
    other = await bundles.get("emergency", OTHER_SITE)
    assert other is not None
    emergency = RecordingEmergency()
    lists = Lists(pinned_key=bundles._key.public_key(), directory=tmp_path, site_id=SITE)
    with pytest.raises(BundleError) as caught:
        await HubEmergency(lists, emergency).install(other.data)
    assert caught.value.problem == "wrong_site"
    assert (emergency.calls, lists.version("emergency")) == ([], 0)
    assert not (tmp_path / "emergency.bundle").exists()
