"""`suishen sim scanner|turnstile|osdp|uhppote ...`: run one device simulator standalone.

Each simulator module in suishen.drivers.sim exposes ``add_cli(subparsers)``, which adds its
own sub-command with a handler returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

SIMULATOR_MODULES = (
    "suishen.drivers.sim.scanner",
    "suishen.drivers.sim.turnstile",
    "suishen.drivers.sim.osdp_reader",
    "suishen.drivers.sim.uhppote",
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "sim", help="run a device simulator (scanner, turnstile, OSDP reader, UHPPOTE controller)"
    )
    sims = parser.add_subparsers(dest="simulator", required=True, metavar="DEVICE")
    for name in SIMULATOR_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # An optional extra (pymodbus, uhppoted, libosdp) is not installed: leave it out.
            if exc.name is not None and not exc.name.startswith("suishen."):
                continue
            raise
        module.add_cli(sims)
