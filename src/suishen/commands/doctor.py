"""`suishen doctor --gateway CONFIG`: check a gateway installation and say what to fix.

One line per finding (ok / warning / error, what, and the fix); exit 0 when nothing is an
error, 1 when something is, 2 when the config itself cannot be loaded. The checks are
suishen.gateway.doctor's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_PROBLEMS = 1
EXIT_CONFIG = 2


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check an installation (config, certificates, hub, clock, devices, lists, disk)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--gateway", type=Path, required=True, metavar="CONFIG", help="the gateway config"
    )
    parser.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from suishen.gateway import doctor  # noqa: PLC0415 (lazy CLI)
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415

    try:
        config = load_config(args.gateway)
    except ConfigError as exc:
        print(f"error   config: {args.gateway}: {exc}".replace("\n", "; "))
        return EXIT_CONFIG
    checks = doctor.run(config)
    for check in checks:
        print(check.line())
    errors = sum(1 for c in checks if c.level == "error")
    warnings = sum(1 for c in checks if c.level == "warning")
    print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return EXIT_PROBLEMS if errors else 0
