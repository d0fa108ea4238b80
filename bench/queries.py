"""The analyst queries on a generated city (issue 11, item 7).

A city of 500 sites (hotels, construction sites, venues, buildings in 16 districts around
Shanghai), 200,000 people and 10,000,000 scans over the last 28 days, loaded with COPY (progress
on stderr) into an embedded PostgreSQL (pgserver, temp directory) with the migrated schema.
Visits and stays are generated with their scans, as central/derive.py would derive them (the
derivation's own cost is measured in bench/ingest.py --derive both).  ``--scale 0.01`` makes a
city a hundredth of that (tests run it tiny).

Each person's visit: a site (popular sites more often), a start in the local day, 10 minutes to
a few hours, an allowed in scan and an allowed out scan (none yet for a visit still open);
5% of the scans are denied; a third of the hotel visits come with a stay (checkin, checkout a
day or three later).

Measured, p50 and p95 over ``--runs`` calls of the query functions (central/queries/) with
``Scope.everywhere()``: a 14-day trace of a random visitor (first degree; second degree on a
fifth of the runs), occupancy now of a random site, the 28-day hourly crowd series of a random
site, the weekly check of a random hotel; and, in the same run, the hand-written co-presence
query (the floor: one SQL statement on the covering indexes, no Python).  The plan of each
(EXPLAIN ANALYZE: the indexes used, the node types, planning and execution time) goes in the
JSON.  Targets: trace first degree p95 <= 25 ms, occupancy now <= 10 ms, crowd <= 100 ms.

    python -m bench.queries [--scale 1.0] [--runs 50]

Prints a table and writes bench/results/queries.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import print_table, write_results
from suishen.central import derive
from suishen.central.db import DatabaseSettings, open_database
from suishen.central.partitions import ensure_partitions_for
from suishen.central.queries import crowd, hotel_check, trace
from suishen.central.scope import Scope
from suishen.logs import configure as configure_logs

SITES = 500
PEOPLE = 200_000
SCANS = 10_000_000
DAYS = 28
DISTRICTS = 16
CHUNK = 50_000  # visits per COPY round
RESET_UTC_HOUR = 20  # 04:00 Asia/Shanghai, the sites' default timezone and reset hour
TARGETS_MS = {"trace_1": 25.0, "occupancy_now": 10.0, "crowd_28d": 100.0}

SITE_COLS = ("site_id", "kind", "district", "lat", "lon", "capacity_soft", "capacity_hard")
SCAN_COLS = (
    "gateway_id", "seq", "ts", "site_id", "lane_id", "direction", "format", "verdict", "reason",
    "person_key", "nationality", "minor", "status", "masked_name", "masked_number", "cti",
    "zone",
)  # fmt: skip
VISIT_COLS = (
    "site_id", "zone", "person_key", "in_gateway_id", "in_seq", "in_ts", "out_gateway_id",
    "out_seq", "out_ts", "close_reason", "close_by",
)  # fmt: skip
STAY_COLS = (
    "site_id", "person_key", "checkin_gateway_id", "checkin_seq", "checkin_ts",
    "checkout_gateway_id", "checkout_seq", "checkout_ts", "nationality", "minor",
    "close_reason", "close_by",
)  # fmt: skip

# The floor: co-presence of one person in one statement on the covering indexes.
FLOOR_SQL = """
SELECT v.person_key,
       sum(least(i.end_ts, coalesce(v.out_ts, v.close_by)) - greatest(i.in_ts, v.in_ts)) AS o
FROM (SELECT site_id, in_ts, coalesce(out_ts, close_by) AS end_ts FROM visits
      WHERE person_key = $1 AND in_ts >= $2 AND in_ts < $3) AS i
JOIN visits v ON v.site_id = i.site_id AND v.in_ts < i.end_ts
             AND v.in_ts >= i.in_ts - interval '16 hours'
WHERE v.person_key <> $1
  AND least(i.end_ts, coalesce(v.out_ts, v.close_by)) - greatest(i.in_ts, v.in_ts)
      >= interval '15 minutes'
GROUP BY v.person_key ORDER BY o DESC
"""


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(
        f"\r{label}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%, {rate:,.0f}/s)",
        end="" if done < total else "\n",
        file=sys.stderr,
        flush=True,
    )


class City:
    """The generated city: sizes from ``scale``, rows from a seeded generator."""

    def __init__(self, scale: float, now: dt.datetime, seed: int = 11) -> None:
        self.sites = max(8, round(SITES * scale))
        self.people = max(50, round(PEOPLE * scale))
        self.scans = max(2000, round(SCANS * scale))
        self.now = now
        self.start = now - dt.timedelta(days=DAYS)
        self.random = random.Random(seed)
        self.keys = [hashlib.sha256(f"person-{n}".encode()).hexdigest() for n in range(self.people)]
        self.site_ids = [f"site-{n:04d}" for n in range(self.sites)]
        self.kinds = [
            "hotel" if n % 10 == 0 else "construction" if n % 10 == 1 else "venue"
            for n in range(self.sites)
        ]
        self.seq = [0] * self.sites
        self.sample: list[str] = []  # visitors of the last 14 days, for the trace runs

    def site_rows(self) -> list[tuple[Any, ...]]:
        r = self.random
        return [
            (
                site_id,
                self.kinds[n],
                f"district-{n % DISTRICTS:02d}",
                31.0 + r.random() * 0.5,
                121.2 + r.random() * 0.6,
                200 + r.randrange(800),
                300 + r.randrange(1200),
            )
            for n, site_id in enumerate(self.site_ids)
        ]

    def _next(self, site: int) -> int:
        self.seq[site] += 1
        return self.seq[site]

    def _scan(
        self, site: int, ts: dt.datetime, direction: str, person: str | None, verdict: str
    ) -> tuple[Any, ...]:
        r = self.random
        return (
            f"gw-{site:04d}",
            self._next(site),
            ts,
            self.site_ids[site],
            f"lane-{r.randrange(4)}",
            direction,
            "SSC1",
            verdict,
            None if verdict == "allow" else r.choice(("expired", "replay", "bad_signature")),
            person,
            "CHN" if r.random() < 0.95 else "DEU",
            r.random() < 0.03,
            "G",
            "张*明",
            "310***********1234",
            f"{r.getrandbits(128):032x}",
            "main",
        )

    def chunks(self) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any]]]:
        """(scans, visits, stays) in rounds of CHUNK visits until self.scans scans."""
        r = self.random
        span = (self.now - self.start).total_seconds()
        made = 0
        recent = self.now - dt.timedelta(days=14)
        while made < self.scans:
            scans: list[tuple[Any, ...]] = []
            visits: list[tuple[Any, ...]] = []
            stays: list[tuple[Any, ...]] = []
            for _ in range(min(CHUNK, max(1, (self.scans - made) // 2))):
                site = int(r.random() ** 2 * self.sites)
                person = self.keys[r.randrange(self.people)]
                in_ts = self.start + dt.timedelta(seconds=r.random() * span)
                if (in_ts.hour + 8) % 24 < 7:  # no entries between 00:00 and 07:00 local
                    in_ts += dt.timedelta(hours=7)
                if in_ts >= self.now:
                    continue
                reset = in_ts.replace(hour=RESET_UTC_HOUR, minute=0, second=0, microsecond=0)
                if reset <= in_ts:
                    reset += dt.timedelta(days=1)
                close_by = min(reset, in_ts + dt.timedelta(hours=16))
                out_ts = in_ts + dt.timedelta(minutes=10 + r.expovariate(1 / 80))
                out_ts = min(out_ts, close_by - dt.timedelta(minutes=1))
                scan_in = self._scan(site, in_ts, "in", person, "allow")
                scans.append(scan_in)
                if out_ts < self.now:
                    scan_out = self._scan(site, out_ts, "out", person, "allow")
                    scans.append(scan_out)
                    out = (scan_out[0], scan_out[1], out_ts, "out")
                else:
                    out = (None, None, None, None)
                visits.append(
                    (
                        self.site_ids[site],
                        "main",
                        person,
                        scan_in[0],
                        scan_in[1],
                        in_ts,
                        *out,
                        close_by,
                    )
                )
                if in_ts >= recent and len(self.sample) < 2000 and r.random() < 0.01:
                    self.sample.append(person)
                if r.random() < 0.0527:  # denied attempts: about 5% of all scans
                    scans.append(self._scan(site, in_ts, "in", person, "deny"))
                if self.kinds[site] == "hotel" and r.random() < 0.33:
                    checkin = in_ts + dt.timedelta(minutes=5)
                    scan_ci = self._scan(site, checkin, "checkin", person, "allow")
                    scans.append(scan_ci)
                    checkout = checkin + dt.timedelta(days=1 + r.random() * 2)
                    if checkout < self.now:
                        scan_co = self._scan(site, checkout, "checkout", person, "allow")
                        scans.append(scan_co)
                        co = (scan_co[0], scan_co[1], checkout)
                    else:
                        co = (None, None, None)
                    stays.append(
                        (
                            self.site_ids[site],
                            person,
                            scan_ci[0],
                            scan_ci[1],
                            checkin,
                            *co,
                            scan_ci[10],
                            scan_ci[11],
                            "out" if co[2] else None,
                            checkin + dt.timedelta(days=30),
                        )
                    )
            made += len(scans)
            yield scans, visits, stays


async def generate(pool: asyncpg.Pool, city: City) -> dict[str, int]:
    """Load the city; return the row counts."""
    days = {(city.start + dt.timedelta(days=d)).date() for d in range(DAYS + 2)}
    async with pool.acquire() as con:
        for table in ("scans", "passages", "visits", "stays"):
            await ensure_partitions_for(con, table, days)
        await con.copy_records_to_table("sites", records=city.site_rows(), columns=SITE_COLS)
        await con.copy_records_to_table(
            "gateways",
            records=[(f"gw-{n:04d}", s) for n, s in enumerate(city.site_ids)],
            columns=("gateway_id", "site_id"),
        )
        counts = {"scans": 0, "visits": 0, "stays": 0}
        started = time.perf_counter()
        for scans, visits, stays in city.chunks():
            await con.copy_records_to_table("scans", records=scans, columns=SCAN_COLS)
            await con.copy_records_to_table("visits", records=visits, columns=VISIT_COLS)
            if stays:
                await con.copy_records_to_table("stays", records=stays, columns=STAY_COLS)
            counts["scans"] += len(scans)
            counts["visits"] += len(visits)
            counts["stays"] += len(stays)
            _progress("scans", min(counts["scans"], city.scans), city.scans, started)
        # VACUUM sets the visibility map (index-only scans), as autovacuum would in service
        print("VACUUM ANALYZE ...", file=sys.stderr, flush=True)
        await con.execute("VACUUM ANALYZE")
    return counts


async def _timed(calls: int, call: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    times = []
    for n in range(calls):
        start = time.perf_counter()
        await call(n)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "runs": len(times),
        "p50_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))],
        "max_ms": times[-1],
    }


def _walk(node: dict[str, Any], indexes: set[str], nodes: set[str]) -> None:
    nodes.add(node["Node Type"])
    if "Index Name" in node:
        indexes.add(node["Index Name"])
    for child in node.get("Plans", ()):
        _walk(child, indexes, nodes)


async def plan(con: asyncpg.Connection, sql: str, *args: Any) -> dict[str, Any]:
    """EXPLAIN ANALYZE summary: the indexes (of partitions: their names) and node types."""
    raw = await con.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    document = json.loads(raw)[0] if isinstance(raw, str) else raw[0]
    indexes: set[str] = set()
    nodes: set[str] = set()
    _walk(document["Plan"], indexes, nodes)
    # partition index names end in the day; the parent index is the name without it
    parents = sorted({_parent_index(name) for name in indexes})
    return {
        "indexes": parents,
        "node_types": sorted(nodes),
        "planning_ms": document.get("Planning Time"),
        "execution_ms": document.get("Execution Time"),
    }


def _parent_index(name: str) -> str:
    """visits_p20261201_site_id_in_ts_person_key_out_ts_close_by_idx -> visits_*_..._idx."""
    head, _, tail = name.partition("_p")
    return f"{head}_p*_{tail.split('_', 1)[1]}" if tail[:8].isdigit() else name


async def measure(pool: asyncpg.Pool, city: City, runs: int) -> dict[str, Any]:
    r = random.Random(7)
    everywhere = Scope.everywhere()
    persons = city.sample or city.keys[:10]
    hotels = [s for s, k in zip(city.site_ids, city.kinds, strict=True) if k == "hotel"]
    popular = city.site_ids[: max(1, city.sites // 10)]  # where the crowds are
    now = city.now
    week = now - dt.timedelta(days=7)
    results: dict[str, Any] = {}
    plans: dict[str, Any] = {}
    async with pool.acquire() as con:

        async def trace1(n: int) -> object:
            params = trace.TraceParams(person_key=persons[n % len(persons)], until=now)
            return await trace.trace(con, everywhere, params)

        async def trace2(n: int) -> object:
            params = trace.TraceParams(
                person_key=persons[-1 - n % len(persons)], until=now, second_degree=True
            )
            return await trace.trace(con, everywhere, params)

        async def floor(n: int) -> object:
            person = persons[n % len(persons)]
            return await con.fetch(FLOOR_SQL, person, now - dt.timedelta(days=14), now)

        async def occupancy_now(_n: int) -> object:
            params = crowd.OccupancyParams(site_id=r.choice(city.site_ids))
            return await crowd.occupancy(con, everywhere, params)

        async def crowd_28d(_n: int) -> object:
            params = crowd.CrowdParams(site_id=r.choice(popular), since=city.start, until=now)
            return await crowd.crowd(con, everywhere, params)

        async def hotel_week(_n: int) -> object:
            params = hotel_check.HotelCheckParams(site_id=r.choice(hotels), week_start=week)
            return await hotel_check.hotel_check(con, everywhere, params)

        for name, call, calls in (
            ("floor_copresence", floor, runs),
            ("trace_1", trace1, runs),
            ("trace_2", trace2, max(3, runs // 5)),
            ("occupancy_now", occupancy_now, runs),
            ("crowd_28d", crowd_28d, max(5, runs // 2)),
            ("hotel_week", hotel_week, max(5, runs // 2)),
        ):
            await call(0)  # warm: statement cache, buffers
            results[name] = await _timed(calls, call)
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
        person, site = persons[0], popular[0]
        max_visit = derive.settings().max_visit
        fourteen = now - dt.timedelta(days=14)
        plans["floor_copresence"] = await plan(con, FLOOR_SQL, person, fourteen, now)
        plans["trace_1"] = await plan(
            con,
            trace._CONTACTS,
            [person],
            fourteen,
            now,
            None,
            dt.timedelta(minutes=15),
            [person],
            max_visit,
        )
        plans["occupancy_now"] = await plan(con, crowd._OCCUPANCY, site, now, max_visit)
        plans["crowd_28d"] = await plan(con, crowd._VISITS, [site], city.start, now, max_visit, now)
        if hotels:
            plans["hotel_week_stays"] = await plan(
                con, hotel_check._STAYS, hotels[0], week, now, now
            )
            plans["hotel_week_entering"] = await plan(
                con, hotel_check._ENTERING, hotels[0], week, now
            )
    return {"timings": results, "plans": plans}


async def run(pool: asyncpg.Pool, *, scale: float, runs: int) -> dict[str, Any]:
    """Generate the city in ``pool``'s (empty, migrated) database and measure."""
    city = City(scale, dt.datetime.now(dt.UTC).replace(microsecond=0))
    started = time.perf_counter()
    counts = await generate(pool, city)
    load_s = time.perf_counter() - started
    measured = await measure(pool, city, runs)
    return {
        "scale": scale,
        "sites": city.sites,
        "people": city.people,
        "rows": counts,
        "load_s": load_s,
        **measured,
    }


async def _main(scale: float, runs: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="suishen-bench-queries-"))
    try:
        settings = DatabaseSettings(state_dir=root / "state", command_timeout=None)
        async with open_database(settings) as pool:
            return await run(pool, scale=scale, runs=runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.queries")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 10M scans")
    parser.add_argument("--runs", type=int, default=50, help="calls per query")
    args = parser.parse_args([] if argv is None else argv)
    configure_logs("warning")
    measured = asyncio.run(_main(args.scale, args.runs))
    timings = measured["timings"]
    rows = []
    for name, t in timings.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else ("meets" if t["p95_ms"] <= target else "misses")
        rows.append([name, t["runs"], t["p50_ms"], t["p95_ms"], target or "", verdict])
    print_table(
        f"Analyst queries: {measured['rows']['scans']:,} scans, {measured['rows']['visits']:,} "
        f"visits, {measured['sites']} sites, {measured['people']:,} people",
        ["query", "runs", "p50 ms", "p95 ms", "target ms", ""],
        rows,
    )
    path = write_results(
        "queries",
        {
            **measured,
            "targets_ms": TARGETS_MS,
            "meets_targets": {
                name: timings[name]["p95_ms"] <= target for name, target in TARGETS_MS.items()
            },
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
