"""`suishen hub webhook ...` and `suishen hub alerts ...`: the alert loop's settings that live
in the hub database (docs/WEBHOOKS.md).

- ``suishen hub webhook set ROUTE URL --secret-file FILE [--disabled]``: the webhook endpoint of
  a route (police, staff, city_ops); FILE holds the secret (first line, >= 16 bytes, mode 0600)
  and is read by the hub whenever it signs or verifies. ``suishen hub webhook list``.
- ``suishen hub alerts key-site SITE_ID [--off]``: a key site's police alerts must be accepted
  within ``alerts.police_accept_key_site_s`` (default 1 minute, else 3).

Database options and exit codes as the other hub commands (commands/hub.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suishen.commands import hub
from suishen.protocol.vocabulary import AlertRoute

ROUTES = tuple(route.value for route in AlertRoute)


def add_commands(commands: Any) -> None:
    """Add the `webhook` and `alerts` groups to `suishen hub`."""
    webhook = commands.add_parser("webhook", help="alert webhooks: one endpoint per route")
    sub = webhook.add_subparsers(dest="webhook_command", required=True, metavar="COMMAND")
    setter = sub.add_parser("set", help="set a route's endpoint (URL and secret file)")
    setter.add_argument("route", choices=ROUTES, metavar="ROUTE", help=" | ".join(ROUTES))
    setter.add_argument("url", metavar="URL", help="http(s):// address receiving the JSON")
    setter.add_argument("--secret-file", required=True, type=Path, metavar="FILE")
    setter.add_argument("--disabled", action="store_true", help="keep it but send nothing")
    hub.add_database_arguments(setter)
    setter.set_defaults(handler=run_webhook_set)
    listing = sub.add_parser("list", help="the configured endpoints")
    hub.add_database_arguments(listing)
    listing.set_defaults(handler=run_webhook_list)

    alerts = commands.add_parser("alerts", help="the alert loop's site flags")
    asub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")
    key = asub.add_parser("key-site", help="mark a key site (1-minute police accept deadline)")
    key.add_argument("site_id", metavar="SITE_ID")
    key.add_argument("--off", action="store_true", help="no longer a key site")
    hub.add_database_arguments(key)
    key.set_defaults(handler=run_key_site)


def _hub_errors(job: Any) -> Any:
    """``job`` wrapped so that a HubError (a refused change) is a ValueError for hub's runner."""

    async def wrapped(con: Any) -> Any:
        from suishen.central.errors import HubError  # noqa: PLC0415 (lazy CLI)

        try:
            async with con.transaction():
                return await job(con)
        except HubError as exc:
            raise ValueError(str(exc)) from exc

    return wrapped


def run_webhook_set(args: argparse.Namespace) -> int:
    from suishen.central.alerts.endpoints import set_endpoint  # noqa: PLC0415 (lazy CLI)

    path = str(args.secret_file.resolve())
    code, endpoint = hub._with_database(  # the hub commands' shared runner
        args,
        _hub_errors(
            lambda con: set_endpoint(con, args.route, args.url, path, enabled=not args.disabled),
        ),
        "webhook set",
    )
    if code == 0:
        state = "enabled" if endpoint.enabled else "disabled"
        print(f"webhook {endpoint.route} -> {endpoint.url} ({state})")
    return code


def run_webhook_list(args: argparse.Namespace) -> int:
    from suishen.central.alerts.endpoints import endpoints  # noqa: PLC0415 (lazy CLI)

    code, rows = hub._with_database(args, endpoints, "webhook list")
    if code != 0:
        return code
    print("route\tenabled\turl\tsecret_file")
    for e in rows:
        print(f"{e.route}\t{'yes' if e.enabled else 'no'}\t{e.url}\t{e.secret_file}")
    return 0


def run_key_site(args: argparse.Namespace) -> int:
    from suishen.central.alerts.loop import set_key_site  # noqa: PLC0415 (lazy CLI)

    code, _ = hub._with_database(
        args,
        _hub_errors(lambda con: set_key_site(con, args.site_id, not args.off)),
        "alerts key-site",
    )
    if code == 0:
        print(f"site {args.site_id}: {'not ' if args.off else ''}a key site")
    return code
