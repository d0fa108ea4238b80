"""Rows per second through the hub's ingest vs. raw asyncpg COPY of the same rows (issue 5).

One embedded PostgreSQL (pgserver, unix socket) in a temp directory, the migrated schema, and
in the same run, over the same number of rows into the same ``scans`` table:

- raw: ``copy_records_to_table("scans", ...)`` of the already-parsed tuples, 1000 per call, from
  4 concurrent connections (the floor: no HTTP, no JSON, no validation, no conflict check);
- hub: 4 concurrent gateway clients (aiohttp, each with its own client certificate) POSTing
  pre-encoded 1000-row JSON batches to /v1/ingest over mutual TLS on 127.0.0.1: TLS, JSON
  decode, per-row validation (wire.parse_batch), gateway lock, COPY to staging, INSERT .. ON
  CONFLICT DO NOTHING, high water, commit.  The clients run in a separate process (gateways
  are other machines; in the hub's own event loop their TLS and HTTP work would be charged to
  the hub); the time is taken from the first request to the last answer.

SAMPLES rounds, each raw then hub over new seqs (the table grows alike for both); the ratio is
the median of the rounds' hub/raw ratios (raw and hub back to back, so a burst of load on the
shared machine or a checkpoint of the server hits one round's pair, not one side of every
ratio: the raw COPY alone swung from 59k to 128k rows/s between runs); the median rates are
reported too.  Target: hub >= 0.5 x raw.  Prints a table and writes
bench/results/ingest.json.

Visits derivation (central/derive.py, in the ingest transaction): ``--derive on`` (default)
or ``--derive off`` runs the hub path with or without it; ``--derive both`` runs both, each on
a fresh database with its own raw COPY figures, and reports each against its raw COPY (the
row of issue 12 is the one with the derivation) and with / without (target: >= 0.8).  Each
person key has an in and the out right after it, so the allowed rows pair into visits (each
gateway its own people; a tenth of the outs is denied, so those visits stay open).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.common import print_table, write_results
from suishen.central import derive
from suishen.central.app import gateway_app, serve
from suishen.central.db import DatabaseSettings, open_database
from suishen.central.partitions import PartitionPolicy, ensure_partitions
from suishen.logs import configure as configure_logs
from suishen.sync import pki
from suishen.sync.wire import SCAN_COLUMNS, encode_batch, parse_batch

GATEWAYS = 4
BATCHES = 40  # per gateway
ROWS = 1000  # per batch
TARGET = 0.5
SAMPLES = 5
DERIVE_TARGET = 0.8  # ingest with visits derivation >= 0.8 x without


def _rows(start: int, now: float, people: int = 0) -> list[dict]:
    return [
        {
            "seq": seq,
            "ts": now + seq * 1e-4,
            "kind": "scan",
            "site_id": "bench-site",
            "lane_id": f"lane-{seq % 8}",
            "direction": "in" if seq % 2 else "out",
            "format": "SSC1",
            "verdict": "allow" if seq % 10 else "deny",
            "reason": None if seq % 10 else "status_red",
            # in at an odd seq, out at the next; each gateway its own people
            "person_key": f"{people + (seq + 1) // 2:064x}",
            "nationality": "CHN",
            "minor": False,
            "status": "G",
            "masked_name": "张*明",
            "masked_number": "310***********1234",
            "cti": f"{seq:032x}",
            "kid": "AAECAwQFBgc=",
            "latency_us": 1500,
        }
        for seq in range(start, start + ROWS)
    ]


def _bodies(gateway_id: str, now: float, sample: int = 0) -> list[bytes]:
    first = 1 + sample * BATCHES * ROWS
    # Each gateway its own people, the raw side's apart from the hub's: the raw rows lie in
    # the same scans table at the same site and times, and sharing person keys with them
    # would pair the hub's visits with the raw rows (and send every person of a batch down
    # the derivation's recomputation, the window holding the raw side's events too).
    number = int(gateway_id.rsplit("-", 1)[1]) + (GATEWAYS if "-raw-" in gateway_id else 0)
    people = number * 10**7
    return [
        json.dumps(encode_batch(gateway_id, _rows(first + b * ROWS, now, people))).encode()
        for b in range(BATCHES)
    ]


async def _raw(pool: asyncpg.Pool, batches: list[list[list[tuple]]]) -> float:
    async def one(gateway: list[list[tuple]]) -> None:
        async with pool.acquire() as con:
            for records in gateway:
                await con.copy_records_to_table("scans", records=records, columns=SCAN_COLUMNS)

    start = time.perf_counter()
    await asyncio.gather(*(one(g) for g in batches))
    return time.perf_counter() - start


async def _clients(url: str, layout: pki.PkiLayout, bodies: dict[str, list[bytes]]) -> float:
    async def one(gateway_id: str, gateway_bodies: list[bytes]) -> None:
        ctx = pki.gateway_ssl_context_for(layout, gateway_id)
        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=ctx)) as client:
            for data in gateway_bodies:
                async with client.post(
                    "/v1/ingest", data=data, headers={"Content-Type": "application/json"}
                ) as response:
                    answer = await response.json()
                    if response.status != 200 or answer["inserted"] != ROWS:
                        raise RuntimeError(f"{gateway_id}: {response.status} {answer}")

    start = time.perf_counter()
    await asyncio.gather(*(one(g, b) for g, b in bodies.items()))
    return time.perf_counter() - start


def _client_process(url: str, root: str, bodies: dict[str, list[bytes]]) -> float:
    return asyncio.run(_clients(url, pki.PkiLayout(Path(root)), bodies))


async def _hub(
    url: str,
    layout: pki.PkiLayout,
    bodies: dict[str, list[bytes]],
    pool: concurrent.futures.ProcessPoolExecutor,
) -> float:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, _client_process, url, str(layout.root), bodies)


async def run(root: Path, *, derive_visits: bool = True) -> dict:
    derive.configure(derive.DeriveSettings(in_ingest=derive_visits))
    now = time.time()
    today = dt.datetime.now(dt.UTC).date()
    layout = pki.init_ca(root / "pki", now=dt.datetime.now(dt.UTC))
    pki.issue_hub(layout.root, now=dt.datetime.now(dt.UTC))
    hub_ids = [f"gw-hub-{n}" for n in range(GATEWAYS)]
    for gateway_id in hub_ids:
        pki.issue_gateway(layout.root, gateway_id, now=dt.datetime.now(dt.UTC))
    settings = DatabaseSettings(state_dir=root / "state", min_size=GATEWAYS + 2, max_size=12)
    async with open_database(settings) as pool:
        async with pool.acquire() as con:
            await ensure_partitions(con, today=today, policy=PartitionPolicy(days_ahead=1))
            await con.execute("INSERT INTO sites (site_id, kind) VALUES ('bench-site', 'venue')")
            for gateway_id in hub_ids:
                await con.execute(
                    "INSERT INTO gateways (gateway_id, site_id, cert_sha256) "
                    "VALUES ($1, 'bench-site', $2)",
                    gateway_id,
                    pki.fingerprint(pki.load_certificate(layout.gateway_cert(gateway_id))),
                )
        app = gateway_app(bundle_key=ed25519.Ed25519PrivateKey.generate(), pool=pool)
        runner, port = await serve(app, "127.0.0.1", 0, pki.hub_ssl_context_for(layout))
        url = f"https://localhost:{port}"
        raw_s, hub_s = [], []
        context = multiprocessing.get_context("spawn")
        try:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as clients:
                await _hub(url, layout, {}, clients)  # warm up: start the client process
                for sample in range(SAMPLES):
                    bodies = {g: _bodies(g, now, sample) for g in hub_ids}
                    raw_batches = [
                        [
                            parse_batch(json.loads(data), bound_gateway_id=f"gw-raw-{n}").scans
                            for data in _bodies(f"gw-raw-{n}", now, sample)
                        ]
                        for n in range(GATEWAYS)
                    ]
                    raw_s.append(await _raw(pool, raw_batches))
                    hub_s.append(await _hub(url, layout, bodies, clients))
                    del bodies, raw_batches
        finally:
            await runner.cleanup()
        stored = await pool.fetchval("SELECT count(*) FROM scans")
        visits, closed = await pool.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE close_reason = 'out') FROM visits"
        )
    total = GATEWAYS * BATCHES * ROWS
    if stored != 2 * total * SAMPLES:
        raise RuntimeError(f"expected {2 * total * SAMPLES} rows, found {stored}")
    # Every hub row derived by the time its upload is answered: an in at each odd seq (all
    # allowed), closed by the out after it unless that out is denied (one in five).
    expected = (total // 2 * SAMPLES, total // 2 * SAMPLES * 4 // 5) if derive_visits else (0, 0)
    if (visits, closed) != expected:
        raise RuntimeError(f"expected (visits, closed) {expected}, found {(visits, closed)}")
    return {"rows": total, "raw_s": raw_s, "hub_s": hub_s, "visits": visits}


def round_ratios(measured: dict) -> list[float]:
    """Each round's hub/raw (rates of the same number of rows, measured back to back)."""
    return [raw / hub for raw, hub in zip(measured["raw_s"], measured["hub_s"], strict=True)]


def paired_ratio(measured: dict) -> float:
    """The median over the rounds of hub/raw."""
    return statistics.median(round_ratios(measured))


def _measure(derive_visits: bool) -> dict:
    root = Path(tempfile.mkdtemp(prefix="suishen-bench-ingest-"))
    try:
        return asyncio.run(run(root, derive_visits=derive_visits))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        derive.configure(derive.DeriveSettings())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--derive", choices=("on", "off", "both"), default="on")
    args = parser.parse_args([] if argv is None else argv)
    configure_logs("warning")
    without = _measure(False) if args.derive in ("off", "both") else None
    measured = _measure(True) if args.derive in ("on", "both") else without
    assert measured is not None
    rows = measured["rows"]
    raw_rate = statistics.median(rows / t for t in measured["raw_s"])
    hub_rate = statistics.median(rows / t for t in measured["hub_s"])
    ratio = paired_ratio(measured)
    print_table(
        f"Ingest: {GATEWAYS} concurrent gateways x {BATCHES} batches x {ROWS} rows into scans, "
        f"median rates of {SAMPLES} rounds; x raw: median of the rounds' ratios",
        ["path", "rows", "rows/s", "x raw", "target"],
        [
            ["raw asyncpg COPY", rows, raw_rate, 1.0, ""],
            ["hub /v1/ingest (mTLS)", rows, hub_rate, ratio, f">= {TARGET}"],
        ],
    )
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"hub/raw = {ratio:.2f} ({verdict} the target of {TARGET})")
    derive_figures: dict[str, object] = {"derive": args.derive, "visits": measured["visits"]}
    if without is not None and measured is not without:
        without_rate = statistics.median(rows / t for t in without["hub_s"])
        without_raw = statistics.median(rows / t for t in without["raw_s"])
        ratio_without = paired_ratio(without)
        # The two runs use two databases at two times: each against its own raw COPY.
        derive_ratio = ratio / ratio_without
        derive_figures |= {
            "hub_rows_per_s_without_derive": without_rate,
            "raw_rows_per_s_without_derive": without_raw,
            "ratio_without_derive": ratio_without,
            "derive_ratio": derive_ratio,
            "derive_target": DERIVE_TARGET,
            "derive_meets_target": derive_ratio >= DERIVE_TARGET,
        }
        print(
            f"without visits derivation: hub/raw = {ratio_without:.2f} "
            f"({without_rate:,.0f} vs {without_raw:,.0f} rows/s)"
        )
        print(f"with visits derivation / without = {derive_ratio:.2f} (target {DERIVE_TARGET})")
    path = write_results(
        "ingest",
        {
            "gateways": GATEWAYS,
            "batch_rows": ROWS,
            "rows_per_side": rows,
            "samples": SAMPLES,
            "raw_s": measured["raw_s"],
            "hub_s": measured["hub_s"],
            "raw_rows_per_s": raw_rate,
            "hub_rows_per_s": hub_rate,
            "ratio": ratio,
            "ratio_of_median_rates": hub_rate / raw_rate,
            "round_ratios": round_ratios(measured),
            "target": TARGET,
            "meets_target": ratio >= TARGET,
            **derive_figures,
            "note": (
                "measured on the cpus given above: the gateway clients, the hub process and "
                "PostgreSQL share them. Hub path per 1000-row batch (issue 12): wire.parse_body "
                "(msgspec typed pass) ~2-3 ms, was ~7 (json.loads + parse_batch); a batch above "
                "the journal's high water goes in by one binary COPY straight into scans (no "
                "staging copy, no INSERT .. SELECT); round trips: lock + journal high water, "
                "partition check, COPY, high water, commit. TLS and HTTP the rest. Visits "
                "derivation per batch (issue 12, derive.py + derive_sql.py), in the ingest "
                "transaction: the (site, person) locks + timezone + the visit partitions in "
                "one statement (lock keys hashed by the server); one statement per kind that "
                "reads the batch back by primary key, pairs in/out with lead(), probes each "
                "person's window (one index probe) and inserts the visits of the persons whose "
                "window holds only the batch's events (a plain INSERT for a batch above the "
                "high water), returning the others for the recomputation. 0016: one index "
                "entry fewer per visit (the primary key is the site's covering index). "
                "Round 5 of issue 12: the derivation's statements run their generic plan "
                "(the server re-planned derive_sql's statement for every batch, ~1 ms) and "
                "the window probe sits at each person's last event (one window pass fewer)."
            ),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
