"""`suishen demo`: the one-command demo on embedded defaults (see suishen.demo.main)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suishen.commands.extras import require_extras


def _demo(args: argparse.Namespace) -> int:
    require_extras("suishen demo", "devices", "hub")
    from suishen.demo import main  # noqa: PLC0415 - the demo needs the devices and hub extras

    return main.main(Path(args.state) if args.state else None, no_wait=args.no_wait)


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the demo on embedded defaults")
    parser.add_argument("--state", help="keep the demo's keys and files in this directory")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="end after printing the web UI's logins (default: serve it until Ctrl-C when "
        "run from a terminal; also SUISHEN_DEMO_NO_WAIT=1)",
    )
    parser.set_defaults(handler=_demo)
