"""/health tells the truth (issue 14, item 5): ok, degraded with reasons, or down; lists the hub
never published are not stale; times carry ISO 8601 beside the seconds; the version is in
/status and /metrics. A real gateway over the simulators (pty scanners, Modbus turnstiles)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

from suishen import __version__
from suishen.gateway.health import DeviceHealth, ListHealth, assess
from suishen.gateway.lists import NOT_PUBLISHED
from tests.integration.gateway_fixtures import cnid, ric, running_gateway

STALE = 86400.0


def _assess(**overrides: object) -> tuple[str, tuple[str, ...]]:
    values: dict[str, object] = {
        "ready": True,
        "stopping": False,
        "journal_full": False,
        "journal_alarm": False,
        "devices": [DeviceHealth(lane_id="in-1", device_id="gate", state="connected", since=0.0)],
        "lists": [
            ListHealth(kind="trust", version=3, entries=2, age_s=60.0, problem=None),
            ListHealth(kind="watchlist", version=0, entries=0, age_s=None, problem=None),
        ],
        "stale_after_s": STALE,
        "upload": {"hub_up": True, "forbidden": False},
    }
    values.update(overrides)
    report = assess(**values)  # type: ignore[arg-type]
    return report.status, report.reasons


def test_assess_each_cause() -> None:
    """One cause at a time, each named; a list never published is not a fault."""
    assert _assess() == ("ok", ())
    never = [ListHealth(kind="roster", version=0, entries=0, age_s=None, problem=NOT_PUBLISHED)]
    assert _assess(lists=never) == ("ok", ())
    broken = [ListHealth(kind="roster", version=0, entries=0, age_s=None, problem="bad_signature")]
    assert _assess(lists=broken) == ("degraded", ("roster list: bad_signature",))
    assert _assess(ready=False)[0] == "down"
    assert _assess(journal_full=True) == ("down", ("journal full: scans cannot be recorded",))
    down = [DeviceHealth(lane_id="in-1", device_id="gate", state="disconnected", since=0.0)]
    assert _assess(devices=down) == (
        "degraded",
        ("device gate (lane in-1) disconnected since 1970-01-01T00:00:00+00:00",),
    )
    stale = [ListHealth(kind="trust", version=3, entries=2, age_s=STALE + 1, problem=None)]
    assert _assess(lists=stale) == (
        "degraded",
        (f"trust list stale: issued {STALE + 1:.0f} s ago",),
    )
    none = [ListHealth(kind="trust", version=0, entries=0, age_s=None, problem=None)]
    assert "every code is refused" in _assess(lists=none)[1][0]
    assert _assess(upload={"hub_up": False, "last_error": "refused"}) == (
        "degraded",
        ("hub unreachable: refused",),
    )
    assert "403" in _assess(upload={"hub_up": True, "forbidden": True})[1][0]
    assert _assess(cert_expires_in_s=10 * 86400.0) == (
        "degraded",
        ("client certificate expires in 10 days: rotate it soon",),
    )
    assert "expired" in _assess(cert_expires_in_s=-1.0)[1][0]
    assert _assess(cert_expires_in_s=31 * 86400.0) == ("ok", ())


async def test_health_degrades_when_a_gate_goes_and_recovers(tmp_path: Path) -> None:
    """All devices up: ok (a watchlist the hub never published is not stale). A turnstile
    board goes away: 200 degraded naming the device and when; back: ok again. /status and
    /metrics carry the version; /status times have their ISO 8601 twin."""
    async with running_gateway(tmp_path) as gw:
        code, body = await gw.health()
        assert (code, body["status"], body["reasons"]) == (200, "ok", []), body
        status = await gw.status()
        assert status["version"] == __version__
        assert dt.datetime.fromisoformat(status["started_at"]) <= dt.datetime.now(dt.UTC)
        watchlist = next(item for item in status["lists"] if item["kind"] == "watchlist")
        assert (watchlist["published"], watchlist["stale"]) == (False, False)
        assert f'suishen_build_info{{version="{__version__}"}} 1' in await gw.metrics()
        assert "suishen_health 0" in await gw.metrics()

        turnstile = gw.site.lanes["in-1"].turnstile
        assert turnstile is not None
        await turnstile.drop()
        deadline = time.monotonic() + 10
        while (body := (await gw.health())[1])["status"] == "ok":
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
        code, body = await gw.health()
        assert (code, body["status"]) == (200, "degraded")
        assert any("(lane in-1)" in reason and " since 20" in reason for reason in body["reasons"])
        assert "suishen_health 1" in await gw.metrics()
        devices = next(lane for lane in (await gw.status())["lanes"] if lane["id"] == "in-1")
        states = [d for d in devices["devices"].values() if d["state"] != "connected"]
        assert states and states[0]["since_iso"].startswith("20")
        await turnstile.restore()
        deadline = time.monotonic() + 15
        while (body := (await gw.health())[1])["status"] != "ok":
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)


async def test_a_lane_whose_gate_is_down_fails_closed_and_opens_are_counted(tmp_path: Path) -> None:
    """An allowed scan opens the gate (gate_opens 1, the metric too); with the turnstile board
    gone the next valid scan is denied gate_down, counted in failed_closed, and the person is
    not counted inside; once the board is back a scan opens again."""
    person = ric(cnid(dt.date(1990, 3, 7)), dob="1990-03-07")
    async with running_gateway(tmp_path) as gw:
        first = await gw.scan("in-1", gw.code(person))
        assert (first.verdict, first.reason) == ("allow", None)
        lane = next(item for item in (await gw.status())["lanes"] if item["id"] == "in-1")
        assert (lane["gate_opens"], lane["failed_closed"]) == (1, 0)
        assert 'suishen_gate_opens_total{lane="in-1"} 1' in await gw.metrics()
        await gw.scan("out-1", gw.code(person))
        inside = await gw.occupancy()

        turnstile = gw.site.lanes["in-1"].turnstile
        assert turnstile is not None
        await turnstile.drop()
        deadline = time.monotonic() + 10
        while gw.service.devices["in-1"].gate.state.value == "connected":  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        refused = await gw.scan("in-1", gw.code(person))
        assert (refused.verdict, refused.reason) == ("deny", "gate_down")
        lane = next(item for item in (await gw.status())["lanes"] if item["id"] == "in-1")
        assert (lane["gate_opens"], lane["failed_closed"]) == (1, 1)
        assert await gw.occupancy() == inside

        await turnstile.restore()
        deadline = time.monotonic() + 15
        while gw.service.devices["in-1"].gate.state.value != "connected":  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        again = await gw.scan("in-1", gw.code(person))
        assert (again.verdict, again.reason) == ("allow", None)
