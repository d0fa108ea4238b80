"""Shared benchmark plumbing: timing by medians, the results table and JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def pin_one_core() -> None:
    """Run on one core so 'per core' rates mean what they say (best effort)."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def rate_per_second(
    work: Callable[[Any], object],
    items: Sequence[Any],
    *,
    rounds: int = 7,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median over `rounds` of items processed per second by `work(item)` over `items`, by
    `clock` (wall time by default; time.process_time counts only this process's CPU time, so
    other work on a shared machine does not stretch it)."""
    rates = []
    for _ in range(rounds):
        start = clock()
        for item in items:
            work(item)
        rates.append(len(items) / (clock() - start))
    return statistics.median(rates)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # The machine is shared: its load when the results were written (1, 5, 15 minutes).
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path
