"""`python -m bench` (make bench): run every benchmark; each prints its table and writes JSON."""

from __future__ import annotations

import importlib
import os
import sys

BENCHMARKS = (
    "bench.verify",
    "bench.cli",
    "bench.devices",
    "bench.gateway",
    "bench.ingest",
    "bench.web",
)


def main() -> int:
    names = sys.argv[1:] or list(BENCHMARKS)
    # A benchmark may pin the process to one core (pin_one_core); the next one starts with the
    # cores this process was given (gateway.py's latency run puts its simulators and the
    # gateway on different cores).
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    for name in names:
        if cores is not None:
            os.sched_setaffinity(0, cores)
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
