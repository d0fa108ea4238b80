"""`suishen hub status` and `suishen hub scans`: the hub's state without SQL (issue 14).

    suishen hub status [--config hub.toml] [--format table|json]
    suishen hub scans --site SITE [--since 2h | ISO] [--until ISO] [--lane L] [--verdict V]
                      [--limit N] [--format table|json|csv] [--config hub.toml]

Both call central/queries (ops.hub_status, site.scan_export) on the database the hub uses;
scans are masked as on the site pages (never a full name or number).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import re
import sys
from typing import Any

from suishen.central.scope import Scope
from suishen.commands import hub

CERT_WARN_DAYS = 30
_SINCE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SCAN_COLUMNS = (
    "ts",
    "lane_id",
    "direction",
    "verdict",
    "reason",
    "format",
    "masked_name",
    "masked_number",
    "gateway_id",
    "seq",
)


def add_commands(commands: Any) -> None:
    status = commands.add_parser(
        "status", help="gateways (last upload, backlog, high water, certificate) and lists"
    )
    hub.add_database_arguments(status)
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.set_defaults(handler=run_status)

    scans = commands.add_parser("scans", help="a site's scans, masked (table, JSON or CSV)")
    scans.add_argument("--site", required=True, help="the site id")
    scans.add_argument(
        "--since", default="1h", help="how far back: 30m, 2h, 7d, or an ISO 8601 time (1h)"
    )
    scans.add_argument("--until", help="an ISO 8601 time (default: now)")
    scans.add_argument("--lane", help="only this lane")
    scans.add_argument("--verdict", choices=("allow", "deny"), help="only this verdict")
    scans.add_argument("--limit", type=int, default=1000, help="at most this many rows (1000)")
    scans.add_argument("--format", choices=("table", "json", "csv"), default="table")
    hub.add_database_arguments(scans)
    scans.set_defaults(handler=run_scans)


def when(text: str, now: dt.datetime) -> dt.datetime:
    """30m / 2h / 7d before ``now``, or an ISO 8601 time (UTC when it names no zone)."""
    match = _SINCE.fullmatch(text)
    if match is not None:
        return now - dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 30m, 2h, 7d or ISO 8601)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- status


def run_status(args: argparse.Namespace) -> int:
    from suishen.central.queries.ops import hub_status  # noqa: PLC0415 (lazy CLI)

    code, status = hub._with_database(  # the hub commands' shared runner
        args, lambda con: hub_status(con, Scope.everywhere()), "status"
    )
    if code != 0:
        return int(code)
    now = dt.datetime.now(dt.UTC)
    if args.format == "json":
        print(json.dumps(dataclasses.asdict(status), default=_json_value, ensure_ascii=False))
        return 0
    heading = ("gateway", "site", "last upload", "backlog", "high water")
    print("{:<20} {:<24} {:<20} {:>8} {:>10}  certificate".format(*heading))
    for g in status.gateways:
        backlog = "-" if g.reported_backlog is None else str(g.reported_backlog)
        print(
            f"{g.gateway_id:<20} {g.site_id:<24} {_ago(g.last_seen_at, now):<20} {backlog:>8} "
            f"{g.high_water:>10}  {_expiry(g.certificate_not_after, now)}"
            + ("" if g.enabled else "  DISABLED")
        )
    if not status.gateways:
        print("(no gateway registered: `suishen site init` or `suishen hub gateway add`)")
    print()
    for item in status.lists:
        print(f"list {item.kind:<10} version {item.version:<6} {_ago(item.updated_at, now)}")
    return 0


def _ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _expiry(not_after: dt.datetime | None, now: dt.datetime) -> str:
    if not_after is None:
        return "expiry unknown"
    days = (not_after - now).total_seconds() / 86400
    text = f"until {not_after:%Y-%m-%d}"
    if days < 0:
        return text + "  EXPIRED: `suishen hub gateway reissue`"
    if days < CERT_WARN_DAYS:
        return text + f"  expires in {days:.0f} days: rotate it"
    return text


def _json_value(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# --------------------------------------------------------------------------- scans


def run_scans(args: argparse.Namespace) -> int:
    from suishen.central.queries.site import ScanLogParams, scan_export  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    try:
        params = ScanLogParams(
            site_id=args.site,
            since=when(args.since, now),
            until=now if args.until is None else when(args.until, now),
            lane_id=args.lane,
            verdict=args.verdict,
        )
    except ValueError as exc:
        print(f"suishen hub scans: {exc}", file=sys.stderr)
        return hub.EXIT_USAGE
    limit = max(1, args.limit)

    async def job(con: Any) -> list[Any]:
        rows: list[Any] = []
        async with con.transaction():
            async for row in scan_export(con, Scope.everywhere(), params):
                rows.append(row)
                if len(rows) >= limit:
                    break
        return rows

    code, rows = hub._with_database(args, job, "scans")
    if code != 0:
        return int(code)
    values = [{c: getattr(row, c) for c in SCAN_COLUMNS} for row in rows]
    if args.format == "json":
        for value in values:
            print(json.dumps(value, default=_json_value, ensure_ascii=False))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=SCAN_COLUMNS)
        writer.writeheader()
        for value in values:
            writer.writerow({k: _cell(v) for k, v in value.items()})
    else:
        for value in values:
            print("  ".join(str(_cell(value[c])) for c in SCAN_COLUMNS))
        print(f"{len(values)} scan(s) at {args.site}", file=sys.stderr)
    return 0


def _cell(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return "" if value is None else value
