"""`suishen`: the command line, the composition root's front door.

Each command group lives in its own module under suishen.commands and exposes
``register(subparsers)``; a handler returns the process exit code.

Start-up time matters (`suishen code verify` in a shell pipeline): a command whose module is
named like it (`suishen code ...` -> suishen.commands.code) is parsed by a parser holding that
module alone, so only what the command needs is imported. Anything else (`--help`, `id`, a
typo) builds the full parser from every module, as before.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Command groups, in the order `suishen --help` lists them.
COMMAND_MODULES = (
    "suishen.commands.issuer",
    "suishen.commands.code",
    "suishen.commands.ident",
    "suishen.commands.sim",
    "suishen.commands.gateway",
    "suishen.commands.hub",
    "suishen.commands.pki",
    "suishen.commands.site",
    "suishen.commands.doctor",
    "suishen.commands.demo",
    "suishen.commands.analyst",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    return _parser(modules)[0]


def _parser(modules: Sequence[str]) -> tuple[argparse.ArgumentParser, Any]:
    """The parser with the commands of `modules`, and its subparsers action."""
    parser = argparse.ArgumentParser(
        prog="suishen", description="Suishen Gate: QR-code access control and check-in."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser, sub


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse argv (sys.argv[1:] when None), importing only the command's module if it can."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        module = f"suishen.commands.{args[0]}"
        if module in COMMAND_MODULES:
            parser, sub = _parser((module,))
            if args[0] in sub.choices:
                return parser.parse_args(args)
    return build_parser().parse_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    handler = args.handler
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # Imported here, not at the top: a command's start-up imports only what it needs.
        from suishen.commands.extras import (  # noqa: PLC0415
            MissingExtraError,
            extra_providing,
        )

        if isinstance(exc, MissingExtraError):
            print(exc, file=sys.stderr)
            return 2
        if isinstance(exc, OSError):
            # A file, folder or port an operator named that the system refused: one line with
            # the path and what to do, never a traceback (issue 14). Anything else: raise.
            message = operator_os_error(exc)
            if message is None:
                raise
            print(f"suishen {args.command}: {message}", file=sys.stderr)
            return 2
        if not isinstance(exc, ModuleNotFoundError):
            raise
        # A module of an optional extra, imported lazily deep inside a command (a gateway
        # config naming a Modbus gate on a base install): name the extra, not a traceback.
        extra = extra_providing(exc.name or "")
        if extra is None:
            raise
        print(MissingExtraError(f"suishen {args.command}", extra, exc.name or ""), file=sys.stderr)
        return 2


def operator_os_error(exc: OSError) -> str | None:
    """What to tell an operator about an OSError from a path or port they gave, else None."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"address in use ({exc.strerror}): another process listens there; "
            "stop it or change the port"
        )
    if exc.filename is None:
        return None
    path = Path(str(exc.filename))
    if isinstance(exc, FileNotFoundError):
        if not path.parent.exists():
            return (
                f"{path}: the folder {path.parent} does not exist; create it or give another path"
            )
        return f"{path} does not exist; check the path"
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied; run as the user that owns it or fix its mode"
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a folder; give a file path"
    if isinstance(exc, NotADirectoryError):
        return f"{path}: a part of it is a file, not a folder; check the path"
    return f"{path}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
