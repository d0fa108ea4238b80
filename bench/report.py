"""The latest benchmark figures as one Markdown table: `python -m bench.report [--readme]`.

Reads bench/results/<name>.json (written by each benchmark) and prints, per target of issue 12,
the measured value, its ratio and the target; with --readme it replaces the table in
README.md between the ``<!-- bench:start -->`` and ``<!-- bench:end -->`` marks. A missing
result file leaves its rows out.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
Row = tuple[str, str, str, str]


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _met(flag: object) -> str:
    return "yes" if flag else "**no**"


def _verify(doc: dict[str, Any]) -> Iterator[Row]:
    clock = " (CPU time)" if doc.get("clock") else ""
    for alg in ("ES256", "EdDSA"):
        r = doc["results"][alg]
        yield (
            f"verify {alg}, ours / bare cryptography verify{clock}",
            f"{r['ours_vs_bare']:.2f} ({r['ours_per_s']:,.0f} vs {r['bare_per_s']:,.0f} /s)",
            ">= 0.8",
            _met(r["ours_vs_bare"] >= 0.8),
        )


def _gateway(doc: dict[str, Any]) -> Iterator[Row]:
    p, lat, mem = doc["pipeline"], doc["latency"], doc["memory"]
    by_cpu = f"; {p['ratio_cpu']:.2f} by CPU time" if "ratio_cpu" in p else ""
    rates = f"{p['pipeline_per_s']:,.0f} vs {p['bare_verify_per_s']:,.0f} /s{by_cpu}"
    yield (
        "gateway pipeline on one core / bare verify",
        f"{p['ratio']:.2f} ({rates})",
        ">= 0.6",
        _met(p["met"]),
    )
    yield (
        f"{lat['lanes']} lanes x {lat['scans_per_s_per_lane']:.0f} scans/s, scan -> open p99",
        f"{lat['p99_us'] / 1000:.2f} ms (p50 {lat['p50_us'] / 1000:.2f})",
        "<= 5 ms",
        _met(lat["met"]),
    )
    yield (
        f"gateway peak RSS, {mem['watchlist_entries']:,}-entry watchlist",
        f"{mem['peak_rss_mb']:.0f} MB",
        "<= 200 MB",
        _met(mem["met"]),
    )


def _ingest(doc: dict[str, Any]) -> Iterator[Row]:
    rates = f"{doc['hub_rows_per_s']:,.0f} vs {doc['raw_rows_per_s']:,.0f} rows/s"
    yield (
        "hub /v1/ingest over mTLS / raw asyncpg COPY",
        f"{doc['ratio']:.2f} ({rates})",
        ">= 0.5",
        _met(doc["meets_target"]),
    )
    without = doc.get("hub_rows_per_s_without_derive")
    if without:  # --derive both: the same run without the visits derivation
        ratio = doc.get("ratio_without_derive", without / doc["raw_rows_per_s"])
        yield (
            "hub /v1/ingest without visits derivation / raw COPY",
            f"{ratio:.2f} ({without:,.0f} rows/s)",
            "(>= 0.5)",
            "",
        )


def _cli(doc: dict[str, Any]) -> Iterator[Row]:
    yield (
        "`suishen code verify` start-up",
        f"{doc['start_s'] * 1000:.0f} ms",
        "<= 150 ms",
        _met(doc["start_met"]),
    )
    yield (
        f"`suishen code verify`, {doc['codes']:,} codes incl. start / bare verify",
        f"{doc['stream_vs_bare']:.2f}",
        ">= 0.5",
        _met(doc["stream_met"]),
    )


SECTIONS: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "verify": _verify,
    "gateway": _gateway,
    "ingest": _ingest,
    "cli": _cli,
}


def table() -> str:
    rows: list[Row] = []
    stamps = []
    for name, section in SECTIONS.items():
        doc = _load(name)
        if doc is None:
            continue
        rows += section(doc)
        load = doc.get("load_average")
        if isinstance(load, dict):  # gateway.json: before and after its run
            load = load.get("after")
        stamps.append(f"{name} {doc['time']}" + (f" (load {load[0]:.1f})" if load else ""))
    lines = [
        "| measurement | latest | target | met |",
        "|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        f"Runs (UTC, 1-minute load average): {', '.join(stamps)}; {_machine()}.",
    ]
    return "\n".join(lines)


def _machine() -> str:
    for name in SECTIONS:
        doc = _load(name)
        if doc is not None:
            return f"{doc['cpus']} cpus, {doc['machine']}, Python {doc['python']}"
    return "no results yet"


def write_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"README.md has no {START} ... {END} section")
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    text = table()
    print(text)
    if "--readme" in sys.argv[1:]:
        write_readme(text)


if __name__ == "__main__":
    main()
