"""Demo stages 3 and 4 as a test: a real hub process on embedded PostgreSQL, a gateway syncing,
and site operations at a second building on the same hub."""

from __future__ import annotations

from suishen.demo.hub_stage import run_hub_demo


async def test_hub_demo_syncs_everything_and_brings_the_watchlist_down(tmp_path):
    """Every journal row reaches the central tables once; the trust list and a watchlist entry
    added at the hub reach the gateway (the entry within 15 s, DESIGN §6), and the watchlisted
    visitor is then stopped at the door with an alert that reaches the hub; the site-operations
    stage runs against the same hub; then each role's demo login opens the dashboard."""
    result = await run_hub_demo(tmp_path)
    assert result.lost == 0
    assert result.duplicated == 0
    assert sum(result.central_rows.values()) == result.journal_rows
    assert result.trust_version >= 1
    assert result.watchlist_reached_s < 15
    assert result.stopped_at_door == ("deny", "watchlist")
    assert result.alerts_received == 1
    # Stage 4 (issue 13): an invitation made at the hub admits its visitor, nobody else; the
    # garage's time profile closes it; the fire alarm holds the exit open within 1 s, the
    # muster list names who is inside (masked), only the command ends it, and the hub has the
    # emergency alerts (police and staff on declaring, staff on ending).
    ops = result.site_ops
    assert ops is not None
    assert [(lane, verdict, reason) for lane, _note, verdict, reason in ops.scans] == [
        ("lobby-in", "allow", None),
        ("lobby-in", "deny", "not_invited"),
        ("garage-in", "deny", "outside_hours"),
    ]
    assert ops.exits_held_after_s < 1.0
    assert ops.muster["count"] == 1
    assert {zone: len(names) for zone, names in ops.muster["zones"].items()} == {
        "garage": 0,
        "lobby": 1,
    }
    assert "*" in ops.muster["zones"]["lobby"][0]  # masked, never the clear name
    assert ops.still_active_after_clear is True
    assert ops.active_at_end is False
    assert ops.hub_alerts == 3
    # Stage 5: the hub's web UI serves the building's dashboard to each role's demo login.
    assert result.web is not None
    assert result.web.url.startswith("http://127.0.0.1:")
    assert result.web.pages == {"site_manager": 200, "analyst": 200, "admin": 200}
