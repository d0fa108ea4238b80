"""`suishen hub calendar ...` and `suishen hub site ...`: site operations sent down as signed
bundles (issue 13; central/store/site_ops.py does the work, the demo may call it directly).

    suishen hub calendar publish FILE [--as USER]     a holiday calendar (JSON, the format of
                                                      data/holidays-cn.json) -> calendar bundle
    suishen hub calendar show [--format table|json]   the calendar published last
    suishen hub site hours SITE FILE [--as USER]      a site's [time_profiles.NAME] and [hours]
                                                      groups (TOML, or JSON for *.json) ->
                                                      the site's roster bundle
    suishen hub site group SITE PERSON_KEY [GROUP]    a worker's roster group (none: clear it)
    suishen hub site emergency SITE on|off --note TEXT --as USER
                                                      the hub's emergency command for a site

A bad file is one line naming the key (``time_profiles.day.mon: windows overlap ...``) and
nothing is stored (exit 2); an unknown site or user exits 3, a user who may not exits 4.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from suishen.commands import hub

EXIT_FORBIDDEN = 4
EMERGENCY_ROLES = frozenset({"admin", "site_manager"})


def add_commands(commands: Any) -> None:
    """Add `calendar` and `site` to the hub's subcommands."""
    calendar = commands.add_parser("calendar", help="the holiday calendar sent to every gateway")
    sub = calendar.add_subparsers(dest="calendar_command", required=True, metavar="COMMAND")
    publish = sub.add_parser("publish", help="publish a holiday calendar (a new bundle)")
    publish.add_argument("file", type=Path, metavar="FILE", help="JSON: version, region, ...")
    _actor(publish)
    hub.add_database_arguments(publish)
    publish.set_defaults(handler=run_calendar_publish)
    show = sub.add_parser("show", help="the calendar published last")
    show.add_argument("--format", choices=("table", "json"), default="table")
    hub.add_database_arguments(show)
    show.set_defaults(handler=run_calendar_show)

    site = commands.add_parser("site", help="a site's hours and emergency, sent to its gateways")
    sub = site.add_subparsers(dest="site_command", required=True, metavar="COMMAND")
    hours = sub.add_parser("hours", help="replace a site's time profiles and roster groups")
    hours.add_argument("site", metavar="SITE")
    hours.add_argument("file", type=Path, metavar="FILE", help="TOML (or JSON for *.json)")
    _actor(hours)
    hub.add_database_arguments(hours)
    hours.set_defaults(handler=run_site_hours)
    group = sub.add_parser("group", help="put a registered worker in a roster group")
    group.add_argument("site", metavar="SITE")
    group.add_argument("person_key", metavar="PERSON_KEY")
    group.add_argument("group", metavar="GROUP", nargs="?", help="absent: no group")
    _actor(group)
    hub.add_database_arguments(group)
    group.set_defaults(handler=run_site_group)
    emergency = sub.add_parser("emergency", help="declare or end an emergency at a site")
    emergency.add_argument("site", metavar="SITE")
    emergency.add_argument("state", choices=("on", "off"))
    emergency.add_argument("--note", required=True, help="why (one line, kept in the audit)")
    emergency.add_argument(
        "--as",
        dest="as_user",
        required=True,
        metavar="USERNAME",
        help="the hub user giving the command (an admin or the site's manager)",
    )
    hub.add_database_arguments(emergency)
    emergency.set_defaults(handler=run_site_emergency)


def _actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="as_user", default="cli", metavar="USERNAME",
                        help="who does it, for the audit (cli)")  # fmt: skip


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _run(args: argparse.Namespace, name: str, job: Any) -> tuple[int, Any]:
    """hub._with_database, with NotFound / Forbidden as one line and exit 3 / 4."""
    from suishen.central.errors import Forbidden, NotFound  # noqa: PLC0415 (lazy CLI)

    async def guarded(con: Any) -> Any:
        try:
            return await job(con)
        except NotFound as exc:
            raise _Refused(hub.EXIT_NOT_FOUND, str(exc)) from None
        except Forbidden as exc:
            raise _Refused(EXIT_FORBIDDEN, str(exc)) from None

    try:
        return hub._with_database(args, guarded, name)
    except _Refused as exc:
        print(f"suishen hub {name}: {exc}", file=sys.stderr)
        return exc.code, None


def read_document(path: Path) -> Any:
    """A JSON file (*.json) or else a TOML one; ValueError naming the file and the place."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def _read(path: Path, name: str) -> tuple[int, Any]:
    try:
        return 0, read_document(path)
    except ValueError as exc:
        print(f"suishen hub {name}: {exc}", file=sys.stderr)
        return hub.EXIT_USAGE, None


# --------------------------------------------------------------------------- calendar


def run_calendar_publish(args: argparse.Namespace) -> int:
    from suishen.central.store.site_ops import publish_calendar  # noqa: PLC0415 (lazy CLI)

    code, document = _read(args.file, "calendar publish")
    if code:
        return code
    code, version = _run(
        args,
        "calendar publish",
        lambda con: publish_calendar(con, document, actor=args.as_user),
    )
    if code == 0:
        print(f"calendar {document['version']} published: calendar bundle version {version}")
    return code


def run_calendar_show(args: argparse.Namespace) -> int:
    from suishen.central.store.site_ops import current_calendar  # noqa: PLC0415 (lazy CLI)

    code, calendar = _run(args, "calendar show", current_calendar)
    if code:
        return code
    if calendar is None:
        print("no calendar published yet (gateways use the one they ship with)")
        return 0
    if args.format == "json":
        print(json.dumps(calendar.document, ensure_ascii=False, indent=2))
        return 0
    document = calendar.document
    at = f"{calendar.published_at:%Y-%m-%d %H:%M}"
    print(f"calendar {calendar.calendar_version} ({calendar.region}), bundle version "
          f"{calendar.version}, by {calendar.published_by} at {at}")  # fmt: skip
    print(f"holidays ({len(document['holidays'])}): {' '.join(sorted(document['holidays']))}")
    print(f"make-up working days ({len(document['workdays'])}): "
          f"{' '.join(sorted(document['workdays']))}")  # fmt: skip
    return 0


# --------------------------------------------------------------------------- site


def run_site_hours(args: argparse.Namespace) -> int:
    from suishen.central.store.site_ops import set_site_hours  # noqa: PLC0415 (lazy CLI)

    code, document = _read(args.file, "site hours")
    if code:
        return code
    code, version = _run(
        args,
        "site hours",
        lambda con: set_site_hours(con, args.site, document, actor=args.as_user),
    )
    if code == 0:
        print(f"hours of {args.site} stored: roster version {version}")
    return code


def run_site_group(args: argparse.Namespace) -> int:
    from suishen.central.store.site_ops import set_worker_group  # noqa: PLC0415 (lazy CLI)

    code, version = _run(
        args,
        "site group",
        lambda con: set_worker_group(
            con, args.site, args.person_key, args.group, actor=args.as_user
        ),
    )
    if code == 0:
        print(f"roster version {version}")
    return code


def run_site_emergency(args: argparse.Namespace) -> int:
    code, version = _run(args, "site emergency", lambda con: declare(con, args))
    if code == 0:
        print(f"emergency {args.state} at {args.site}: emergency bundle version {version}")
    return code


async def declare(con: Any, args: argparse.Namespace) -> int:
    """The named user's emergency command for the site (an admin, or the site's manager)."""
    from suishen.central.errors import Forbidden, NotFound  # noqa: PLC0415 (lazy CLI)
    from suishen.central.store.audit import named_user  # noqa: PLC0415
    from suishen.central.store.site_ops import site_emergency  # noqa: PLC0415

    user = await named_user(con, args.as_user)
    if user is None or user.disabled:
        raise NotFound(f"no enabled hub user {args.as_user!r}")
    if user.role not in EMERGENCY_ROLES or (
        user.role == "site_manager" and args.site not in user.site_ids
    ):
        raise Forbidden(f"{user.username} ({user.role}) may not command {args.site}")
    return await site_emergency(
        con,
        args.site,
        active=args.state == "on",
        by=user.username,
        note=args.note,
        user_id=user.user_id,
    )
