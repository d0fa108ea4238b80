"""`suishen sim scanner|turnstile|osdp|uhppote|site ...`: run device simulators standalone.

`suishen sim site CONFIG` runs a simulator for every device a gateway config names, at the
addresses it names (suishen.demo.config_sims), and with --issuer presents valid codes.

Each simulator module in suishen.drivers.sim exposes ``add_cli(subparsers)``, which adds its
own sub-command with a handler returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
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
    site = sims.add_parser(
        "site",
        help="every device a gateway config names, at its addresses (loopback)",
        description="Simulate every scanner, turnstile and controller of a gateway config, "
        "where the config says they are, until Ctrl-C. With --issuer, present a fresh valid "
        "code of a new visitor at each entry lane in turn.",
    )
    site.add_argument("config", type=Path, metavar="CONFIG", help="the gateway config")
    site.add_argument("--issuer", type=Path, help="issuer directory (`suishen issuer keygen`)")
    site.add_argument("--every", type=float, default=1.0, help="seconds between scans (1.0)")
    site.add_argument("--count", type=int, help="stop after this many scans")
    site.set_defaults(handler=run_site)


def run_site(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 (lazy CLI)
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from suishen.commands.extras import require_extras  # noqa: PLC0415
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415

    require_extras("suishen sim site", "devices")
    from suishen.demo import config_sims  # noqa: PLC0415
    from suishen.demo.issuer import IssuerKey  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"suishen sim site: {args.config}: {exc}", file=sys.stderr)
        return 2
    issuer = IssuerKey(args.issuer) if args.issuer is not None else None

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await config_sims.run_site(
            config,
            os.environ,
            issuer=issuer,
            every_s=args.every,
            count=args.count,
            report=lambda line: print(line, flush=True),
            stop=stop,
        )

    try:
        asyncio.run(main())
    except config_sims.NotLoopbackError as exc:
        print(f"suishen sim site: {exc}", file=sys.stderr)
        return 2
    return 0
