"""`suishen sim scanner|turnstile|osdp|uhppote ...`: run one device simulator standalone.

Each simulator module in suishen.drivers.sim exposes ``add_cli(subparsers)``, which adds its
own sub-command with a handler returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from suishen.commands.extras import MissingExtraError, extra_providing

# (sub-command, module, what it simulates) in the order `suishen sim --help` lists them.
SIMULATORS = (
    ("scanner", "suishen.drivers.sim.scanner", "a QR scanner on a pty or TCP"),
    ("turnstile", "suishen.drivers.sim.turnstile", "a Modbus relay-board turnstile"),
    ("osdp", "suishen.drivers.sim.osdp_reader", "an OSDP reader"),
    ("uhppote", "suishen.drivers.sim.uhppote", "a UHPPOTE access controller"),
)


def _needs_extra(command: str, extra: str, module: str) -> Any:
    def handler(_args: argparse.Namespace) -> int:
        raise MissingExtraError(command, extra, module)

    return handler


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "sim", help="run a device simulator (scanner, turnstile, OSDP reader, UHPPOTE controller)"
    )
    sims = parser.add_subparsers(dest="simulator", required=True, metavar="DEVICE")
    for command, name, what in SIMULATORS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # An optional extra (pymodbus, uhppoted, libosdp) is not installed: the command
            # stays listed and says which extra to install.
            extra = extra_providing(exc.name or "")
            if extra is None:
                raise
            # No option prefix: whatever follows (even --help) is taken, and the handler says
            # which extra to install.
            stub = sims.add_parser(
                command,
                help=f"{what} (needs the '{extra}' extra)",
                prefix_chars="+",
                add_help=False,
            )
            stub.add_argument("rest", nargs="*")
            stub.set_defaults(handler=_needs_extra(f"suishen sim {command}", extra, exc.name or ""))
            continue
        module.add_cli(sims)
