"""`suishen hub user ...`: people who use the hub's web UI and API (central/store/users.py).

- ``user add USERNAME --role site_manager|tenant|analyst|admin [--name TEXT] [--site SITE ...]``
- ``user passwd USERNAME``: a new password (every session of the user ends)
- ``user grant USERNAME SITE [--revoke]``: a site manager's or tenant's sites
- ``user list``: username, role, sites, disabled
- ``user token USERNAME [--label TEXT] [--days N]``: a bearer token for API clients, printed
  once (the hub keeps only its hash)

A password never comes from the command line (other local users can read it): it is read from
the environment variable ``SUISHEN_USER_PASSWORD`` when set, else from standard input (one
line) when that is not a terminal, else prompted for twice without echo.
The commands take the hub's database options (--dsn | --state); exit codes as `suishen hub`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from suishen.protocol.vocabulary import Role

PASSWORD_ENV = "SUISHEN_USER_PASSWORD"  # noqa: S105 - a variable name, not a secret
ROLES = tuple(role.value for role in Role)


def register(commands: Any) -> None:
    """Add `hub user` and its commands to the hub group's subparsers."""
    from suishen.commands.hub import add_database_arguments  # noqa: PLC0415 - hub imports us

    user = commands.add_parser("user", help="people using the web UI and the API")
    sub = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="create a user (password from a prompt, stdin or env)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--site", action="append", default=[], help="grant this site (repeatable)")
    add.set_defaults(handler=run_add)
    passwd = sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("username")
    passwd.set_defaults(handler=run_passwd)
    grant = sub.add_parser("grant", help="grant (or --revoke) a site to a user")
    grant.add_argument("username")
    grant.add_argument("site")
    grant.add_argument("--revoke", action="store_true")
    grant.set_defaults(handler=run_grant)
    listing = sub.add_parser("list", help="list users, roles and sites")
    listing.set_defaults(handler=run_list)
    token = sub.add_parser("token", help="make a bearer token for API clients (shown once)")
    token.add_argument("username")
    token.add_argument("--label", default="", help="what the token is for")
    token.add_argument("--days", type=int, default=None, help="expires after N days")
    token.set_defaults(handler=run_token)
    for parser in (add, passwd, grant, listing, token):
        add_database_arguments(parser)


def read_password() -> str:
    """The new password: $SUISHEN_USER_PASSWORD, else a line of stdin, else a prompt."""
    value = os.environ.get(PASSWORD_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def _run(args: argparse.Namespace, job: Any, name: str) -> tuple[int, Any]:
    from suishen.commands.hub import _with_database  # noqa: PLC0415 - hub imports us

    return _with_database(args, job, f"user {name}")


def run_add(args: argparse.Namespace) -> int:
    from suishen.central.store import users  # noqa: PLC0415 (lazy CLI)

    try:
        password = read_password()
    except ValueError as exc:
        print(f"suishen hub user add: {exc}", file=sys.stderr)
        return 2

    async def job(con: Any) -> int:
        async with con.transaction():
            user_id = await users.add_user(
                con, args.username, role=Role(args.role), password=password, display_name=args.name
            )
            for site in args.site:
                await users.grant_site(con, args.username, site)
        return int(user_id)

    code, user_id = _run(args, job, "add")
    if code == 0:
        print(f"user {args.username} ({args.role}) added, id {user_id}")
    return code


def run_passwd(args: argparse.Namespace) -> int:
    from suishen.central.store import users  # noqa: PLC0415 (lazy CLI)

    try:
        password = read_password()
    except ValueError as exc:
        print(f"suishen hub user passwd: {exc}", file=sys.stderr)
        return 2

    async def job(con: Any) -> None:
        async with con.transaction():
            await users.set_password(con, args.username, password)

    code, _ = _run(args, job, "passwd")
    if code == 0:
        print(f"password of {args.username} changed; their sessions ended")
    return code


def run_grant(args: argparse.Namespace) -> int:
    from suishen.central.store import users  # noqa: PLC0415 (lazy CLI)

    async def job(con: Any) -> bool:
        return bool(await users.grant_site(con, args.username, args.site, grant=not args.revoke))

    code, changed = _run(args, job, "grant")
    if code == 0:
        what = "revoked from" if args.revoke else "granted to"
        print(f"site {args.site} {what} {args.username}" + ("" if changed else " (no change)"))
    return code


def run_list(args: argparse.Namespace) -> int:
    from suishen.central.store import users  # noqa: PLC0415 (lazy CLI)

    code, rows = _run(args, users.list_users, "list")
    if code == 0:
        print(f"{'username':<20} {'role':<13} {'disabled':<8} sites")
        for row in rows:
            sites = ",".join(sorted(row.site_ids)) or "-"
            print(f"{row.username:<20} {row.role.value:<13} {row.disabled!s:<8} {sites}")
    return code


def run_token(args: argparse.Namespace) -> int:
    from suishen.central.store import users  # noqa: PLC0415 (lazy CLI)

    if args.days is not None and args.days < 1:
        print("suishen hub user token: --days must be >= 1", file=sys.stderr)
        return 2

    async def job(con: Any) -> str:
        return await users.create_token(
            con, args.username, label=args.label, lifetime_days=args.days
        )

    code, token = _run(args, job, "token")
    if code == 0:
        print(token)
    return code
