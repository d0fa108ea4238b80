"""`suishen`: the command line, the composition root's front door.

Each command group lives in its own module under suishen.commands and exposes
``register(subparsers)``; a handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from suishen.commands.extras import MissingExtraError, extra_providing

# Command groups, in the order `suishen --help` lists them.
COMMAND_MODULES = (
    "suishen.commands.issuer",
    "suishen.commands.code",
    "suishen.commands.ident",
    "suishen.commands.sim",
    "suishen.commands.gateway",
    "suishen.commands.hub",
    "suishen.commands.pki",
    "suishen.commands.demo",
    "suishen.commands.analyst",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="suishen", description="Suishen Gate: QR-code access control and check-in."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        return int(handler(args) or 0)
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        # A module of an optional extra, imported lazily deep inside a command (a gateway
        # config naming a Modbus gate on a base install): name the extra, not a traceback.
        extra = extra_providing(exc.name or "")
        if extra is None:
            raise
        print(MissingExtraError(f"suishen {args.command}", extra, exc.name or ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
