"""`suishen gateway ...`: the edge daemon's commands.

- ``suishen gateway check-config FILE``: load and validate a config file; print a summary
  (gateway, site, lanes with their devices) and exit 0, or print every problem with its key
  path to stderr and exit 2.
- ``suishen gateway run --config FILE``: run the gateway until SIGTERM/SIGINT (then stop
  taking scans, finish those in flight, flush the journal, exit 0).
- ``suishen gateway settings``: print every setting with its type, default and help
  (the text of deploy/config/SETTINGS.md).

Each sub-command is one ``_add_<name>(commands)`` function; ``run`` slots in the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from suishen.commands import gateway_emergency
from suishen.commands.settings_doc import add_settings_command

EXIT_CONFIG = 2  # the config file cannot be used


def register(sub: Any) -> None:
    """Add the `gateway` group and its commands to the top-level subparsers."""
    group = sub.add_parser("gateway", help="the edge gateway: check its config, run it")
    commands = group.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    _add_check_config(commands)
    _add_run(commands)
    add_settings_command(commands, config_module="suishen.gateway.config", what="config")
    gateway_emergency.register(commands)


# --------------------------------------------------------------------------- run


def _add_run(commands: Any) -> None:
    parser = commands.add_parser("run", help="run the gateway (lanes, journal, local HTTP)")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE")
    parser.set_defaults(handler=run_gateway)


def run_gateway(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 (lazy CLI)
    import signal  # noqa: PLC0415

    from suishen.gateway import preflight  # noqa: PLC0415
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415
    from suishen.gateway.service import GatewayService  # noqa: PLC0415
    from suishen.logs import configure  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"suishen gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    problems = preflight.errors([*preflight.check_files(config), *preflight.check_ports(config)])
    if problems:
        for problem in problems:
            print(f"suishen gateway run: {problem.setting}: {problem.message}", file=sys.stderr)
        return EXIT_CONFIG
    configure(config.logging.level.value, json=config.logging.json)

    async def main() -> None:
        try:
            service = GatewayService(config)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, service.stop, signal.Signals(signum).name)
            await service.run()
        except ConfigError as exc:  # what changed between the checks and the start
            for problem in exc.problems:
                print(f"suishen gateway run: {problem}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None

    asyncio.run(main())
    return 0


# --------------------------------------------------------------------------- check-config


def _add_check_config(commands: Any) -> None:
    parser = commands.add_parser(
        "check-config",
        help="check a gateway config and what it names, as `gateway run` would",
        description="Load and validate a gateway config file, then check what `gateway run` "
        "checks before it starts: the files it names are readable and parse (keys, "
        "certificates, trust file), the pepper is set and long enough, the ports are free; "
        "and, as a warning only, that the hub answers. Exit 0 with a summary (and any "
        "warning), or 2 with every problem naming its setting and the fix.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the gateway config (TOML)")
    parser.add_argument(
        "--syntax-only",
        action="store_true",
        help="validate the file alone (for a config prepared on another machine)",
    )
    parser.set_defaults(handler=run_check_config)


def run_check_config(args: argparse.Namespace) -> int:
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415 (lazy CLI)

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"{args.file}: invalid gateway config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n".join(summary_lines(config)))
    if args.syntax_only:
        return 0
    import asyncio  # noqa: PLC0415 (lazy CLI)

    from suishen.gateway import preflight  # noqa: PLC0415

    findings = [
        *preflight.check_files(config),
        *preflight.check_ports(config),
        *asyncio.run(preflight.check_hub(config)),
    ]
    for finding in findings:
        print(finding.line(), file=sys.stderr)
    return EXIT_CONFIG if preflight.errors(findings) else 0


def summary_lines(config: Any) -> list[str]:
    """A short human summary of a GatewayConfig: site, lanes and their devices."""
    site = config.site
    name = f" ({site.name})" if site.name else ""
    lines = [
        f"gateway  {config.gateway.id}",
        f"site     {site.id}{name}, kind {site.kind.value}, zones {', '.join(site.zones)}",
    ]
    rules = site.rules
    if rules.capacity_hard is not None or rules.capacity_soft is not None:
        hard, soft = _or_dash(rules.capacity_hard), _or_dash(rules.capacity_soft)
        lines.append(f"capacity hard {hard}, soft {soft}")
    formats = ", ".join(sorted(f.value for f in rules.accepted_formats(site.kind)))
    lines.append(f"accepts  {formats}")
    lines.append(f"hub      {config.hub.url if config.hub is not None else 'none (offline)'}")
    lines.append(f"http     {config.http.host}:{config.http.port}")
    lines.append(f"lanes    {len(config.lanes)}")
    for lane in config.lanes:
        lines.append(f"  {lane.id:<12} {lane.direction.value:<8} zone {lane.zone}")
        lines.append(f"    scanner    {describe_device(lane.scanner)}")
        lines.append(f"    gate       {describe_device(lane.gate)}")
        if lane.indicator is not None:
            lines.append(f"    indicator  {describe_device(lane.indicator)}")
    return lines


def describe_device(device: Any) -> str:
    """One line naming a lane device's kind and where it is."""
    kind = device.kind
    if kind == "serial":
        return f"serial {device.url} @ {device.baudrate}"
    if kind == "tcp":
        return f"tcp {device.mode.value} {device.host}:{device.port}"
    if kind == "modbus":
        return f"modbus {device.url} unit {device.unit} coil {device.coil}"
    if kind in ("osdp",):
        return f"osdp bus {device.bus} address {device.address}"
    if kind == "uhppote" and hasattr(device, "door"):
        return f"uhppote {device.controller} door {device.door}"
    if kind == "uhppote":
        doors = ", ".join(str(d) for d in sorted(device.doors)) or "all"
        return f"uhppote {device.controller} readers of doors {doors}"
    if kind == "scanner":
        return "the lane's scanner"
    return str(kind)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
