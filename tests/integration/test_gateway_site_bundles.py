"""The hub's site bundles at a running gateway (issue 13): a roster bundle's time profiles and
groups close a lane to a group's workers as soon as it is installed, and a newer one opens it
again; a calendar bundle newer than the shipped one is loaded as the last good one on start,
shown on /status and decides holidays; a bad calendar or roster bundle is refused naming the
key and leaves the last good one in effect; the hub's emergency command is applied through the
gateway's Emergency once. A real lane (pty scanner, Modbus turnstile)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import zoneinfo
from pathlib import Path

import pytest

from suishen.demo.simsite import LaneSpec
from suishen.gateway.hub_commands import HubEmergency
from suishen.gateway.lists import RosterEntry
from suishen.gateway.records import Direction
from suishen.protocol.errors import BundleError
from suishen.protocol.listbodies import SiteEmergencyCommand, emergency_body, roster_body
from suishen.protocol.time_profiles import bundled_calendar
from tests.integration.gateway_fixtures import RunningGateway, cnid, ric, running_gateway

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = {d: ["00:00-24:00"] for d in DAYS}
LANES = [LaneSpec(id="in-1")]


def roster(gw: RunningGateway, person_key: str, profile: dict, *, version: int) -> bytes:
    site = gw.service.config.site.id
    body = roster_body(
        [(person_key, RosterEntry(site_id=site, group="crew"))],
        time_profiles={"crew-hours": profile},
        groups={"crew": "crew-hours"},
    )
    return gw.bundle("roster", body, version=version)


async def test_a_roster_groups_profile_from_the_hub_closes_and_opens(tmp_path: Path) -> None:
    """A crew whose hub profile admits at no time: outside_hours, no open; the next roster
    bundle gives the crew an all-day profile: the same worker enters; a roster bundle with
    overlapping windows is refused naming the key and the open profile stays."""
    worker = ric(cnid(dt.date(1979, 3, 3)), dob="1979-03-03")
    async with running_gateway(tmp_path, lanes=LANES) as gw:
        key = gw.key("RIC", worker.idn)
        assert gw.service.lists.install("roster", roster(gw, key, {}, version=1)) == 1
        turnstile = gw.site.lanes["in-1"].turnstile
        assert turnstile is not None
        refused = await gw.scan("in-1", gw.code(worker))
        assert (refused.verdict, refused.reason) == ("deny", "outside_hours")
        assert turnstile.opens_received == 0

        assert gw.service.lists.install("roster", roster(gw, key, ALWAYS, version=2)) == 2
        entered = await gw.scan("in-1", gw.code(worker))
        assert (entered.verdict, entered.reason) == ("allow", None)

        overlapping = {"mon": ["06:00-12:00", "11:00-13:00"]}
        with pytest.raises(BundleError) as caught:
            gw.service.lists.install("roster", roster(gw, key, overlapping, version=3))
        assert "time_profiles.crew-hours.mon" in str(caught.value)
        assert gw.service.lists.version("roster") == 2
        status = await gw.status()
        assert status["hours"]["groups"] == ["crew"]


def calendar_document(*, version: int, holidays: list[str]) -> dict:
    return {"version": version, "region": "CN", "holidays": holidays, "workdays": []}


async def test_a_calendar_bundle_is_the_last_good_one_on_start(tmp_path: Path) -> None:
    """A calendar bundle on disk (newer than the shipped calendar, today a holiday) is loaded
    on start: /status shows its version, source "bundle"; a lane open every day but closed on
    holidays denies outside_hours today. A bad calendar bundle is refused naming the date and
    the calendar in effect stays."""
    shipped = bundled_calendar().version
    worker = ric(cnid(dt.date(1977, 7, 7)), dob="1977-07-07")
    profile = "\n[time_profiles.weekdays]\n" + "".join(f'{d} = ["00:00-24:00"]\n' for d in DAYS)

    def edit(text: str) -> str:
        return (
            text.replace('id = "in-1"\n', 'id = "in-1"\ntime_profile = "weekdays"\n', 1) + profile
        )

    def before_start(gw: RunningGateway) -> None:
        today = dt.datetime.now(zoneinfo.ZoneInfo(gw.service.config.site.timezone)).date()
        document = calendar_document(version=shipped + 1, holidays=[today.isoformat()])
        gw.write_bundle("calendar", document, version=4)

    async with running_gateway(
        tmp_path, lanes=LANES, edit_config=edit, before_start=before_start
    ) as gw:
        status = await gw.status()
        assert status["hours"]["version"] == shipped + 1
        assert status["hours"]["source"] == "bundle"
        assert {s["kind"]: s["version"] for s in status["lists"]}["calendar"] == 4
        refused = await gw.scan("in-1", gw.code(worker))
        assert (refused.verdict, refused.reason) == ("deny", "outside_hours")

        bad = calendar_document(version=shipped + 2, holidays=["2027-02-30"])
        with pytest.raises(BundleError) as caught:
            gw.service.lists.install("calendar", gw.bundle("calendar", bad, version=5))
        assert "calendar.holidays[0]" in str(caught.value)
        assert (await gw.status())["hours"]["version"] == shipped + 1

        cleared = calendar_document(version=shipped + 2, holidays=[])
        assert gw.service.lists.install("calendar", gw.bundle("calendar", cleared, version=6))
        entered = await gw.scan("in-1", gw.code(worker))
        assert (entered.verdict, entered.reason) == ("allow", None)


def emergency(gw: RunningGateway, *, active: bool, version: int, site: str = "") -> bytes:
    command = SiteEmergencyCommand(
        site_id=site or gw.service.config.site.id,
        active=active,
        by="chief",
        note="fire, building B" if active else "all clear",
        at=int(time.time()),
    )
    return gw.bundle("emergency", emergency_body(command), version=version)


async def test_the_hubs_emergency_command_at_a_running_gateway(tmp_path: Path) -> None:
    """The hub's emergency bundle declares the emergency (source hub, the hub user, the note):
    the exit's gate is held open; the same bundle again is refused (stale) and applies
    nothing; another site's is refused (wrong_site); the hub's "off" ends it and the exit
    closes; /status shows the version held."""
    lanes = [LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)]
    async with running_gateway(tmp_path, lanes=lanes, extra_toml="\n[emergency]\n") as gw:
        hub = HubEmergency(gw.service.lists, gw.service.emergency)
        exit_gate = gw.site.lanes["out-1"].turnstile
        assert exit_gate is not None and not exit_gate.relay_on
        on = emergency(gw, active=True, version=3)
        assert await hub.install(on) == 3
        state = gw.service.emergency.status()
        assert (state["active"], state["source"], state["actor"]) == (True, "hub", "chief")
        assert state["note"] == "fire, building B"
        async with asyncio.timeout(5):
            while not exit_gate.relay_on:  # noqa: ASYNC110 - simulator state, no event
                await asyncio.sleep(0.01)

        with pytest.raises(BundleError) as stale:
            await hub.install(on)
        assert stale.value.problem == "stale"
        with pytest.raises(BundleError) as elsewhere:
            await hub.install(emergency(gw, active=False, version=4, site="another-site"))
        assert elsewhere.value.problem == "wrong_site"
        assert gw.service.emergency.active

        assert await hub.install(emergency(gw, active=False, version=5)) == 5
        assert not gw.service.emergency.active
        async with asyncio.timeout(5):
            while exit_gate.relay_on:  # noqa: ASYNC110 - simulator state, no event
                await asyncio.sleep(0.01)
        status = await gw.status()
        assert {s["kind"]: s["version"] for s in status["lists"]}["emergency"] == 5
