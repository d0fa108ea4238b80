"""`suishen`: the command line, the composition root's front door.

Each command group lives in its own module under suishen.commands and exposes
``register(subparsers)``; a handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

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
    "suishen.commands.site",
    "suishen.commands.doctor",
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
    except OSError as exc:
        # A file, folder or port an operator named that the system refused: one line with the
        # path and what to do, never a traceback (issue 14). Anything else is a bug: raise.
        message = operator_os_error(exc)
        if message is None:
            raise
        print(f"suishen {args.command}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


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
