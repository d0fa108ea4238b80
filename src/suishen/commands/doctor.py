"""`suishen doctor --gateway CONFIG | --hub HUB_TOML`: check an installation, say what to fix.

One line per finding (ok / warning / error, what, and the fix); exit 0 when nothing is an
error, 1 when something is, 2 when the config itself cannot be loaded. The checks are
suishen.gateway.doctor's and suishen.central.doctor's.
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
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--gateway", type=Path, metavar="CONFIG", help="the gateway config")
    which.add_argument("--hub", type=Path, metavar="HUB_TOML", help="the hub config")
    parser.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    if args.hub is not None:
        return run_hub_doctor(args)
    from suishen.gateway import doctor  # noqa: PLC0415 (lazy CLI)
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415

    try:
        config = load_config(args.gateway)
    except ConfigError as exc:
        print(f"error   config: {args.gateway}: {exc}".replace("\n", "; "))
        return EXIT_CONFIG
    return report(doctor.run(config))


def run_hub_doctor(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 (lazy CLI)

    from suishen.central import doctor  # noqa: PLC0415
    from suishen.central.app import database_settings  # noqa: PLC0415
    from suishen.central.config import HubConfigError, load_config  # noqa: PLC0415
    from suishen.central.db import DatabaseError  # noqa: PLC0415

    try:
        config = load_config(args.hub)
        settings = database_settings(config)
    except (HubConfigError, DatabaseError) as exc:
        print(f"error   config: {args.hub}: {exc}".replace("\n", "; "))
        return EXIT_CONFIG
    return report(asyncio.run(doctor.examine(config, settings)))


def report(checks: Any) -> int:
    """Print each finding; the exit code (1 when one is an error)."""
    for check in checks:
        print(check.line())
    errors = sum(1 for c in checks if c.level == "error")
    warnings = sum(1 for c in checks if c.level == "warning")
    print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return EXIT_PROBLEMS if errors else 0
