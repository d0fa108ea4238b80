"""Site operations at the hub (issue 13): the holiday calendar, a site's time profiles and roster
groups, and the emergency command for a site, each stored, audited and served as a signed
bundle over the gateways' mutual-TLS API; bad input refused naming the key, nothing stored."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.app import gateway_app, serve
from suishen.central.errors import NotFound
from suishen.central.store.lists import roster_add
from suishen.central.store.site_ops import (
    SiteOpsError,
    publish_calendar,
    set_site_hours,
    set_worker_group,
    site_emergency,
)
from suishen.protocol.bundles import open_bundle
from suishen.protocol.listbodies import (
    calendar_of,
    emergency_command,
    roster_hours,
    roster_workers,
)
from suishen.sync import pki

from .hubkit import OTHER_SITE, SITE, person, register
from .test_gateway_api import SMALL_BODY, Hub, _get

CALENDAR = {
    "version": 2027,
    "region": "CN",
    "holidays": ["2027-01-01", "2027-10-01"],
    "workdays": ["2027-10-09"],
}
HOURS = {
    "time_profiles": {
        "day": {d: ["06:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "closed": {},
    },
    "hours": {"groups": {"crew": "day"}},
}


@pytest.fixture
async def hub(db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Hub]:
    async with listening_hub(db_pool, tmp_path) as running:
        yield running


@contextlib.asynccontextmanager
async def listening_hub(db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Hub]:
    """The hub's gateway listener on loopback with a fresh PKI and bundle key."""
    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(tmp_path / "pki", now=now)
    pki.issue_hub(layout.root, now=now)
    key = ed25519.Ed25519PrivateKey.generate()
    app = gateway_app(bundle_key=key, pool=db_pool, max_body_bytes=SMALL_BODY, bundle_poll_s=60)
    runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
    try:
        yield Hub(f"https://localhost:{port}", layout, key, db_pool)
    finally:
        await runner.cleanup()


async def versions(con: Any) -> dict[str, int]:
    rows = await con.fetch("SELECT kind, version FROM bundle_versions")
    return {r["kind"]: r["version"] for r in rows}


async def test_a_calendar_is_published_as_a_signed_bundle(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A published calendar reaches a gateway as the calendar bundle whose body parses back to
    the same calendar; the publication is audited."""
    await register(db_pool, "gw-a")
    async with db_pool.acquire() as con:
        assert await publish_calendar(con, CALENDAR, actor="ops") == 1
        assert await con.fetchval("SELECT count(*) FROM audit WHERE action = 'calendar_publish'")
    async with hub.client("gw-a") as client:
        status, data, _ = await _get(client, "/v1/bundles/calendar?after=0")
    assert status == 200
    bundle = open_bundle(data, pinned_key=hub.key.public_key(), kind="calendar")
    calendar = calendar_of(bundle.body)
    assert (bundle.version, calendar.version, len(calendar.holidays)) == (1, 2027, 2)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"holidays": ["2027-01-01", "2027-02-30"]}, "calendar.holidays[1]"),
        ({"workdays": ["2027-01-01"]}, "calendar.workdays"),
        ({"version": 0}, "calendar.version"),
        ({"region": ""}, "calendar.region"),
    ],
)
async def test_a_bad_calendar_is_refused_naming_the_field(
    con: asyncpg.Connection, change: dict[str, Any], field: str
) -> None:
    """A bad date (or a day both holiday and workday, a bad version or region) is refused
    naming the field; nothing is stored and the calendar version stays."""
    with pytest.raises(SiteOpsError) as caught:
        await publish_calendar(con, {**CALENDAR, **change}, actor="ops")
    assert caught.value.field == field
    assert await con.fetchval("SELECT count(*) FROM calendars") == 0
    assert (await versions(con))["calendar"] == 0


async def test_an_older_calendar_is_refused(con: asyncpg.Connection) -> None:
    """A calendar whose own version is not above the published one is refused (gateways keep
    the newer one anyway), and nothing changes."""
    await publish_calendar(con, CALENDAR, actor="ops")
    with pytest.raises(SiteOpsError, match=r"calendar\.version"):
        await publish_calendar(con, {**CALENDAR, "holidays": []}, actor="ops")
    assert (await versions(con))["calendar"] == 1


async def test_site_hours_ride_in_the_roster(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A site's profiles and groups, and a worker's group, are in that site's roster bundle
    only (a new roster version each); the other site's roster has none."""
    await register(db_pool, "gw-a", kind="construction")
    await register(db_pool, "gw-b", OTHER_SITE, kind="construction")
    async with db_pool.acquire() as con:
        await roster_add(con, SITE, person(1))
        version = await set_site_hours(con, SITE, HOURS, actor="ops")
        assert await set_worker_group(con, SITE, person(1), "crew", actor="ops") == version + 1
    async with hub.client("gw-a") as client:
        _, data, _ = await _get(client, "/v1/bundles/roster")
    body = open_bundle(data, pinned_key=hub.key.public_key(), kind="roster").body
    hours = roster_hours(body)
    assert dict(hours.groups) == {"crew": "day"}
    assert set(hours.profiles) == {"day", "closed"}
    assert [w.group for _, w in roster_workers(body)] == ["crew"]
    async with hub.client("gw-b") as client:
        _, data, _ = await _get(client, "/v1/bundles/roster")
    other = open_bundle(data, pinned_key=hub.key.public_key(), kind="roster").body
    assert "time_profiles" not in other and "groups" not in other


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (
            {"time_profiles": {"day": {"mon": ["06:00-12:00", "11:00-20:00"]}}},
            "time_profiles.day.mon",
        ),
        ({"time_profiles": {"day": {"mon": ["25:00-26:00"]}}}, "time_profiles.day.mon[0]"),
        ({"time_profiles": {"day": {"mon": ["20:00-06:00"]}}}, "time_profiles.day.mon[0]"),
        ({"time_profiles": {"day": {"monday": []}}}, "time_profiles.day.monday"),
        (
            {"time_profiles": {"day": {}}, "hours": {"groups": {"crew": "night"}}},
            "hours.groups.crew",
        ),
        ({"hours": {"calendar_file": "x.json"}}, "hours.calendar_file"),
        ({"lanes": []}, "lanes"),
    ],
)
async def test_bad_site_hours_are_refused_naming_the_key(
    con: asyncpg.Connection, document: dict[str, Any], field: str
) -> None:
    """Overlapping windows, a bad time, an end before the start, an unknown day, a group naming
    no profile, a key the hub does not take: refused naming the key; nothing stored, the roster
    version unchanged."""
    await register(con, "gw-a")
    before = await versions(con)
    with pytest.raises(SiteOpsError) as caught:
        await set_site_hours(con, SITE, document, actor="ops")
    assert caught.value.field == field
    assert await con.fetchval("SELECT count(*) FROM site_time_profiles") == 0
    assert await versions(con) == before


async def test_an_unknown_site_is_refused(con: asyncpg.Connection) -> None:
    """Hours or an emergency for a site the hub does not know: NotFound, nothing stored."""
    with pytest.raises(NotFound):
        await set_site_hours(con, "no-such-site", HOURS, actor="ops")
    with pytest.raises(NotFound):
        await site_emergency(con, "no-such-site", active=True, by="ops")
    assert (await versions(con))["roster"] == 0
    assert (await versions(con))["emergency"] == 0
    assert await con.fetchval("SELECT count(*) FROM site_emergencies") == 0


async def test_emergency_bundles_are_per_site(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """Each site's gateway receives its own site's newest command, with that command's
    version; a command for another site is not sent as new: a gateway holding its site's
    version long-polls on (304 after the wait) however many other sites get commands."""
    await register(db_pool, "gw-a")
    await register(db_pool, "gw-b", OTHER_SITE)
    async with db_pool.acquire() as con:
        assert await site_emergency(con, SITE, active=True, by="chief", note="fire, B1") == 1
        assert await site_emergency(con, OTHER_SITE, active=True, by="chief") == 2
        assert await con.fetchval("SELECT count(*) FROM audit WHERE action = 'site_emergency'")
    async with hub.client("gw-a") as client:
        status, data, _ = await _get(client, "/v1/bundles/emergency?after=0")
        assert status == 200
        bundle = open_bundle(data, pinned_key=hub.key.public_key(), kind="emergency")
        command = emergency_command(bundle.body, site_id=SITE)
        assert (bundle.version, command.active, command.by) == (1, True, "chief")
        assert command.note == "fire, B1"

        poll = asyncio.create_task(_get(client, "/v1/bundles/emergency?after=1&wait=1.5"))
        await asyncio.sleep(0.3)
        async with db_pool.acquire() as con:
            await site_emergency(con, OTHER_SITE, active=False, by="chief")
        started = time.monotonic()
        status, _, _ = await poll
        assert status == 304
        assert time.monotonic() - started > 0.8  # it waited on, not a 304 at once

        poll = asyncio.create_task(_get(client, "/v1/bundles/emergency?after=1&wait=10"))
        await asyncio.sleep(0.3)
        async with db_pool.acquire() as con:
            version = await site_emergency(con, SITE, active=False, by="chief", note="clear")
        status, data, _ = await asyncio.wait_for(poll, 5)
        assert status == 200
        bundle = open_bundle(data, pinned_key=hub.key.public_key(), kind="emergency")
        assert bundle.version == version == 4
        assert not emergency_command(bundle.body, site_id=SITE).active


async def test_no_emergency_bundle_before_the_first_command(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """A site that never had a command gets 304 (no bundle), even when another site has."""
    await register(db_pool, "gw-a")
    await register(db_pool, "gw-b", OTHER_SITE)
    async with db_pool.acquire() as con:
        await site_emergency(con, OTHER_SITE, active=True, by="chief")
    async with hub.client("gw-a") as client:
        status, _, _ = await _get(client, "/v1/bundles/emergency?after=0&wait=0")
    assert status == 304
