"""A whole gateway with a [hub] section takes the site bundles over mutual TLS (issue 13): the
hub's emergency command for its site, long-polled by the service's own fetcher, declares the
emergency (source hub) and holds the exit open; the hub's "off" ends it; a calendar bundle
becomes the calendar in effect on /status. The hub is the strict protocol peer
(tests/integration/hub_peer.py) serving bundles signed with the site's pinned hub key."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from suishen.demo.simsite import LaneSpec, SimSite
from suishen.gateway.config import load_config
from suishen.gateway.records import Direction
from suishen.gateway.service import GatewayService
from suishen.protocol.bundles import seal_bundle
from suishen.protocol.listbodies import SiteEmergencyCommand, emergency_body
from suishen.protocol.time_profiles import bundled_calendar
from suishen.sync import pki
from tests.integration.hub_peer import HubPeer

WAIT_S = 10.0
GATEWAY = "gw-building"  # SimSite's gateway id


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubPeer]:
    now = dt.datetime.now(dt.UTC)
    layout = pki.init_ca(tmp_path / "pki", now=now)
    pki.issue_hub(layout.root, now=now)
    peer = HubPeer(layout)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polls service and simulator state
            await asyncio.sleep(0.02)


async def test_the_service_fetches_and_applies_the_hubs_site_bundles(
    tmp_path: Path, hub: HubPeer
) -> None:
    """Emergency on from the hub: declared with source hub, the exit gate held open; off from
    the hub: ended, the gate shut; a newer calendar from the hub: in effect on /status."""
    cert, key = pki.issue_gateway(hub.layout.root, GATEWAY, now=dt.datetime.now(dt.UTC))
    hub_toml = (
        f'[hub]\nurl = "{hub.url}"\nclient_cert = "{cert}"\nclient_key = "{key}"\n'
        f'ca = "{hub.layout.ca_cert}"\nlong_poll_s = 2\nshutdown_flush_s = 0.5\n\n[emergency]\n'
    )
    lanes = [LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)]
    site = await SimSite.create(tmp_path / "site", lanes=lanes, extra_toml=hub_toml)
    assert site.bundle_key is not None

    def signed(kind: str, version: int, body: object) -> bytes:
        assert site.bundle_key is not None
        return seal_bundle(
            kind=kind, version=version, issued_at=int(time.time()), body=body, key=site.bundle_key
        )

    def command(active: bool) -> dict[str, object]:
        return emergency_body(
            SiteEmergencyCommand(
                site_id=site_id, active=active, by="chief", note="drill", at=int(time.time())
            )
        )

    try:
        service = GatewayService(load_config(site.config_path), environ=site.environ)
        site_id = service.config.site.id
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(WAIT_S):
                await service.wait_ready()
            exit_gate = site.lanes["out-1"].turnstile
            assert exit_gate is not None
            await hub.publish("emergency", 2, signed("emergency", 2, command(True)))
            await wait_for(lambda: service.emergency.active and exit_gate.relay_on)
            assert service.emergency.status()["source"] == "hub"
            await hub.publish("emergency", 3, signed("emergency", 3, command(False)))
            await wait_for(lambda: not service.emergency.active and not exit_gate.relay_on)

            document = {"version": bundled_calendar().version + 1, "region": "CN",
                        "holidays": [], "workdays": []}  # fmt: skip
            await hub.publish("calendar", 1, signed("calendar", 1, document))
            await wait_for(lambda: service.lists.version("calendar") == 1)
            hours = service.status()["hours"]
            assert (hours["version"], hours["source"]) == (document["version"], "bundle")
        finally:
            service.stop()
            async with asyncio.timeout(WAIT_S):
                await task
    finally:
        await site.aclose()
