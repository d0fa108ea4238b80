"""Demo stage 3 as a test: a real hub process on embedded PostgreSQL and a gateway syncing."""

from __future__ import annotations

from suishen.demo.hub_stage import run_hub_demo


async def test_hub_demo_syncs_everything_and_brings_the_watchlist_down(tmp_path):
    """Every journal row reaches the central tables once; the trust list and a watchlist entry
    added at the hub reach the gateway (the entry within 15 s, DESIGN §6), and the watchlisted
    visitor is then stopped at the door with an alert that reaches the hub; then each role's
    demo user logs in to the hub's web UI and opens the building's dashboard."""
    result = await run_hub_demo(tmp_path)
    assert result.lost == 0
    assert result.duplicated == 0
    assert sum(result.central_rows.values()) == result.journal_rows
    assert result.trust_version >= 1
    assert result.watchlist_reached_s < 15
    assert result.stopped_at_door == ("deny", "watchlist")
    assert result.alerts_received == 1
    # Stage 4: the hub's web UI serves the building's dashboard to each role's demo login.
    assert result.web is not None
    assert result.web.url.startswith("http://127.0.0.1:")
    assert result.web.pages == {"site_manager": 200, "analyst": 200, "admin": 200}
