"""`suishen hub visitor ...`: visitor invitations (central/store/invitations.py, issue 13).

- ``visitor invite SITE --document TYPE[:NAT] --from T --until T [--lanes a,b] [--zones z]
  [--name NAME] [--tenant USER] --as USER``: the document number is read from standard input
  (one line; a prompt on a terminal), never from argv (other local users can read a process's
  arguments); or ``--person-key KEY`` instead of a document.  TYPE is RIC, HMT, FPR or PP
  (``PP:GBR``: a passport and its nationality).  T is ISO 8601 (``2026-12-05T09:00``; without
  an offset: the site's time zone) or ``now``; ``--until`` may also be ``+8h`` / ``+2d`` (from
  the start).  Prints the invitation (``--format json``: as JSON).
- ``visitor cancel ID --as USER``; ``visitor list SITE [--all] --as USER`` (``--all``: also
  cancelled and ended ones); ``visitor arrivals SITE [--days N] --as USER``.

``--as`` names the hub user acting (audited): a tenant (its own invitations), a site manager of
the site or an admin.  Exit codes: 0 done, 1 database unavailable, 2 bad argument (the message
names the field), 3 not found (or not yours), 4 forbidden (the role may not do it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
from typing import Any

from suishen.commands.analyst import (
    EXIT_USAGE,
    FORMATS,
    CliError,
    read_document_number,
    run_as_hub_user,
)
from suishen.commands.hub import add_database_arguments

DOCUMENT_TYPES = ("RIC", "HMT", "FPR", "PP")
_RELATIVE = re.compile(r"\+(\d{1,4})([hd])")


def add_commands(commands: Any) -> None:
    """Add `hub visitor` and its commands to the hub group's subparsers."""
    visitor = commands.add_parser("visitor", help="visitor invitations (tenants)")
    sub = visitor.add_subparsers(dest="visitor_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--as", dest="as_user", required=True, metavar="USERNAME",
        help="the hub user (tenant, site manager, admin) acting; audited",
    )  # fmt: skip
    common.add_argument("--format", choices=FORMATS[:2], default="table")
    add_database_arguments(common)

    invite = sub.add_parser("invite", parents=[common], help="invite a visitor to a site")
    invite.add_argument("site")
    who = invite.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--document", metavar="TYPE[:NAT]",
        help="RIC, HMT, FPR or PP:NAT; the number is read from standard input",
    )  # fmt: skip
    who.add_argument("--person-key", help="the visitor's person key (64 hex)")
    invite.add_argument("--from", dest="valid_from", required=True, metavar="TIME")
    invite.add_argument("--until", dest="valid_until", required=True, metavar="TIME")
    invite.add_argument("--lanes", default="", help="lane ids, comma-separated (none: all)")
    invite.add_argument("--zones", default="", help="zones, comma-separated (none: all)")
    invite.add_argument("--name", default="", help="the visitor's name (only its mask is kept)")
    invite.add_argument("--tenant", help="site managers and admins: invite for this tenant")
    invite.set_defaults(handler=lambda args: _run(args, _invite))

    cancel = sub.add_parser("cancel", parents=[common], help="cancel an invitation")
    cancel.add_argument("invitation_id", type=int)
    cancel.set_defaults(handler=lambda args: _run(args, _cancel))

    listing = sub.add_parser("list", parents=[common], help="a site's invitations")
    listing.add_argument("site")
    listing.add_argument("--all", action="store_true", help="also cancelled and ended ones")
    listing.set_defaults(handler=lambda args: _run(args, _list))

    arrivals = sub.add_parser("arrivals", parents=[common], help="invited visitors' scans")
    arrivals.add_argument("site")
    arrivals.add_argument("--days", type=int, default=30)
    arrivals.set_defaults(handler=lambda args: _run(args, _arrivals))


# --------------------------------------------------------------------------- arguments


def parse_document(text: str, number: str) -> Any:
    """``TYPE`` or ``PP:NAT`` and the number -> a Document; CliError when TYPE[:NAT] is not
    that shape (a number given on the command line is refused without being echoed)."""
    from suishen.central.store.watchlist import Document  # noqa: PLC0415 (lazy CLI)

    idt, _, nat = text.strip().upper().partition(":")
    if idt not in DOCUMENT_TYPES or (nat and (idt != "PP" or not re.fullmatch(r"[A-Z]{3}", nat))):
        raise CliError(
            EXIT_USAGE,
            "--document is RIC, HMT, FPR or PP:NAT (the number is read from standard input, "
            "never from the command line)",
        )
    return Document(idt=idt, idn=number, nat=nat or None)


def parse_time(text: str, *, zone: dt.tzinfo, now: dt.datetime, field: str) -> dt.datetime:
    """``now``, or ISO 8601 (no offset: ``zone``); CliError naming ``field`` otherwise."""
    if text.strip().lower() == "now":
        return now
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(EXIT_USAGE, f"{field}: a time is ISO 8601 or 'now'") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def parse_until(text: str, *, start: dt.datetime, zone: dt.tzinfo, now: dt.datetime) -> dt.datetime:
    """``+Nh`` / ``+Nd`` after ``start``, else as :func:`parse_time`."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        amount, unit = int(relative[1]), relative[2]
        return start + (dt.timedelta(hours=amount) if unit == "h" else dt.timedelta(days=amount))
    return parse_time(text, zone=zone, now=now, field="valid_until")


# --------------------------------------------------------------------------- commands


def _plain(row: Any) -> dict[str, Any]:
    out = dataclasses.asdict(row)
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in out.items()}


def _emit(plain: list[dict[str, Any]], fmt: str, columns: tuple[str, ...]) -> None:
    if fmt == "json":
        print(json.dumps(plain, ensure_ascii=False, indent=1))
        return
    print("  ".join(columns))
    for row in plain:
        cells = []
        for name in columns:
            value = row.get(name)
            cells.append(",".join(value) or "-" if isinstance(value, list) else str(value or "-"))
        print("  ".join(cells))


INVITATION_COLUMNS = (
    "invitation_id", "tenant", "masked_name", "valid_from", "valid_until", "lanes", "zones",
    "state",
)  # fmt: skip


def _show(rows: list[Any], fmt: str) -> None:
    now = dt.datetime.now(dt.UTC)
    plain = [{**_plain(r), "state": r.state(now)} for r in rows]
    _emit(plain, fmt, INVITATION_COLUMNS)


async def _invite(ctx: Any) -> int:
    from suishen.central.queries.sitekind import zone_of  # noqa: PLC0415 (lazy CLI)
    from suishen.central.store import invitations as inv  # noqa: PLC0415

    args = ctx.args
    site = await inv.site_choice(ctx.con, ctx.user, args.site)  # NotFound out of scope
    zone = zone_of(site.timezone)
    now = dt.datetime.now(dt.UTC)
    start = parse_time(args.valid_from, zone=zone, now=now, field="valid_from")
    until = parse_until(args.valid_until, start=start, zone=zone, now=now)
    document = None
    if args.document is not None:
        parse_document(args.document, "0")  # the shape first: nothing is read for a bad one
        document = parse_document(args.document, read_document_number("id_number"))
    request = inv.InviteRequest(
        site_id=args.site, valid_from=start, valid_until=until, document=document,
        person_key=args.person_key, name=args.name, lanes=inv.split_places(args.lanes),
        zones=inv.split_places(args.zones), tenant=args.tenant,
    )  # fmt: skip
    row = await inv.invite(
        ctx.con,
        ctx.user,
        request,
        pepper=ctx.pepper(),
        now=now,
        limits=ctx.config.visitors.limits(),
    )
    _show([row], args.format)
    return 0


async def _cancel(ctx: Any) -> int:
    from suishen.central.store import invitations as inv  # noqa: PLC0415 (lazy CLI)

    _show([await inv.cancel(ctx.con, ctx.user, ctx.args.invitation_id)], ctx.args.format)
    return 0


async def _list(ctx: Any) -> int:
    from suishen.central.store import invitations as inv  # noqa: PLC0415 (lazy CLI)

    args = ctx.args
    rows = await inv.list_invitations(ctx.con, ctx.user, args.site, include_past=args.all)
    _show(rows, args.format)
    return 0


async def _arrivals(ctx: Any) -> int:
    from suishen.central.store import invitations as inv  # noqa: PLC0415 (lazy CLI)

    args = ctx.args
    rows = await inv.arrivals(ctx.con, ctx.user, args.site, days=args.days)
    columns = ("ts", "invitation_id", "masked_name", "lane_id", "zone", "verdict", "reason")
    _emit([_plain(r) for r in rows], args.format, columns)
    return 0


@dataclasses.dataclass(slots=True, kw_only=True)
class Context:
    """What a command runs with: its arguments, the hub config, a connection, the user."""

    args: argparse.Namespace
    config: Any  # HubConfig
    con: Any
    user: Any  # audit.NamedUser

    def pepper(self) -> bytes | None:
        from suishen.commands.analyst import Context as AnalystContext  # noqa: PLC0415

        return AnalystContext.pepper(self)  # type: ignore[arg-type]  # the same reader


def _run(args: argparse.Namespace, job: Any) -> int:
    """Run ``job(ctx)`` as the named user on the hub database, mapping errors to exit codes."""
    from suishen.central.store.invitations import named_inviter  # noqa: PLC0415
    from suishen.commands.extras import require_extras  # noqa: PLC0415

    require_extras("suishen hub visitor", "hub")

    def with_context(config: Any, con: Any, user: Any) -> Any:
        return job(Context(args=args, config=config, con=con, user=user))

    name = f"suishen hub visitor {args.visitor_command}"
    return run_as_hub_user(args, name=name, resolve_user=named_inviter, job=with_context)


__all__ = ["add_commands", "parse_document", "parse_time", "parse_until"]
