"""`suishen pki ...`: the deployment CA and the mutual-TLS certificates (DESIGN §6).

    suishen pki init [--dir DIR] [--force]
    suishen pki issue-hub [--dir DIR] [--host NAME_OR_IP ...]
    suishen pki issue-gateway GATEWAY_ID [--dir DIR] [--force]

DIR defaults to ./pki.  Layout and key handling: suishen.sync.pki.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from suishen.sync import pki

EXIT_PKI = 2
DEFAULT_DIR = Path("pki")


def register(sub: Any) -> None:
    """Add the `pki` group and its commands to the top-level subparsers."""
    group = sub.add_parser("pki", help="make the deployment CA, hub and gateway certificates")
    commands = group.add_subparsers(dest="pki_command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create the deployment CA")
    _add_dir(init)
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(handler=run_init)

    hub = commands.add_parser("issue-hub", help="issue the hub's TLS server certificate")
    _add_dir(hub)
    hub.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="NAME_OR_IP",
        help="a DNS name or IP address the hub is reached at (repeatable; default: "
        + " and ".join(pki.DEFAULT_HUB_HOSTS)
        + ")",
    )
    hub.set_defaults(handler=run_issue_hub)

    gateway = commands.add_parser(
        "issue-gateway", help="issue a gateway's TLS client certificate (binds its id)"
    )
    gateway.add_argument("gateway_id", metavar="GATEWAY_ID")
    _add_dir(gateway)
    gateway.add_argument(
        "--force",
        action="store_true",
        help="replace the gateway's existing certificate and key (then pin the new one at the "
        "hub; `suishen hub gateway reissue` does both and refuses the old one)",
    )
    gateway.set_defaults(handler=run_issue_gateway)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"PKI directory (default: {DEFAULT_DIR})"
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fail(error: pki.PkiError) -> int:
    print(f"suishen pki: {error}", file=sys.stderr)
    return EXIT_PKI


def run_init(args: argparse.Namespace) -> int:
    try:
        layout = pki.init_ca(args.dir, now=_now(), force=args.force)
    except pki.PkiError as exc:
        return _fail(exc)
    print(f"CA: {layout.ca_cert} (key {layout.ca_key}, keep it offline)")
    return 0


def run_issue_hub(args: argparse.Namespace) -> int:
    hosts = args.hosts or pki.DEFAULT_HUB_HOSTS
    try:
        cert, key = pki.issue_hub(args.dir, now=_now(), hosts=hosts)
    except pki.PkiError as exc:
        return _fail(exc)
    print(f"hub: {cert} (key {key}) for {', '.join(hosts)}")
    return 0


def run_issue_gateway(args: argparse.Namespace) -> int:
    try:
        existing = pki.PkiLayout(args.dir).gateway_cert(args.gateway_id)
    except pki.PkiError as exc:
        return _fail(exc)
    if not args.force and existing.exists():
        print(
            f"suishen pki issue-gateway: {args.gateway_id} already has a certificate at "
            f"{existing}; to rotate it run `suishen hub gateway reissue {args.gateway_id}` "
            "(issues and pins the new one, the old one is refused), or pass --force",
            file=sys.stderr,
        )
        return EXIT_PKI
    try:
        cert, key = pki.issue_gateway(args.dir, args.gateway_id, now=_now())
    except pki.PkiError as exc:
        return _fail(exc)
    print(f"gateway {args.gateway_id}: {cert} (key {key})")
    return 0
