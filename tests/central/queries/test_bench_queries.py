"""bench/queries.py at a tiny scale: the city loads, every query runs, every plan is taken."""

from __future__ import annotations

import asyncpg
from bench import queries


async def test_tiny_city_runs_every_query_with_its_plan(db_pool: asyncpg.Pool) -> None:
    """Scale 0.0003 (8 sites, 3000 scans): rows are loaded, visits match their in scans, each
    query is timed and each plan names the indexes it used."""
    measured = await queries.run(db_pool, scale=0.0003, runs=2)
    assert measured["rows"]["scans"] >= 3000
    async with db_pool.acquire() as con:
        ins = await con.fetchval(
            "SELECT count(*) FROM scans WHERE direction = 'in' AND verdict = 'allow'"
        )
        assert (
            ins == measured["rows"]["visits"] == await con.fetchval("SELECT count(*) FROM visits")
        )
    assert set(measured["timings"]) == {
        "floor_copresence", "trace_1", "trace_2", "occupancy_now", "crowd_28d", "hotel_week",
    }  # fmt: skip
    for name, summary in measured["plans"].items():
        assert summary["node_types"], name
        assert summary["execution_ms"] is not None, name
