"""`python -m bench` (make bench): run every benchmark; each prints its table and writes JSON."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("bench.verify", "bench.devices", "bench.gateway", "bench.ingest", "bench.web")


def main() -> int:
    names = sys.argv[1:] or list(BENCHMARKS)
    for name in names:
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
