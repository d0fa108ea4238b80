"""`suishen hub ...`: the central hub's commands.

- ``suishen hub migrate [--dsn DSN | --state DIR]``: apply pending migrations from deploy/sql
  and create the daily partitions ahead; with ``--state`` (default ./hub-state) the embedded
  PostgreSQL under DIR/pgdata is started for the job (and let go after).  Exit 0, or 2 when
  the database and the migration files disagree, 1 when the database cannot be reached.

Each sub-command is one ``_add_<name>(commands)`` function plus its ``run_<name>`` handler;
``run``, ``watchlist add|remove`` and ``trust add|remove`` slot in the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

EXIT_DATABASE = 1  # the database cannot be reached or started
EXIT_MIGRATION = 2  # the database and the migration files disagree
DEFAULT_STATE_DIR = Path("hub-state")


def register(sub: Any) -> None:
    """Add the `hub` group and its commands to the top-level subparsers."""
    group = sub.add_parser("hub", help="the central hub: database, listeners, lists")
    commands = group.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")
    _add_migrate(commands)


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """--dsn | --state: the database options every hub command shares."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dsn", help="PostgreSQL (>= 14) DSN, e.g. postgresql://user@host/db")
    where.add_argument(
        "--state",
        type=Path,
        help=f"hub state directory; embedded PostgreSQL in STATE/pgdata (default: "
        f"{DEFAULT_STATE_DIR}, used when no --dsn)",
    )


def database_settings(args: argparse.Namespace) -> Any:
    from suishen.central.db import DatabaseSettings  # noqa: PLC0415 (lazy CLI)

    if args.dsn:
        return DatabaseSettings(dsn=args.dsn)
    return DatabaseSettings(state_dir=args.state or DEFAULT_STATE_DIR)


# --------------------------------------------------------------------------- migrate


def _add_migrate(commands: Any) -> None:
    parser = commands.add_parser(
        "migrate",
        help="apply database migrations and create partitions ahead",
        description="Apply pending migrations (deploy/sql) and create daily partitions.",
    )
    add_database_arguments(parser)
    parser.add_argument(
        "--days-ahead", type=int, default=7, help="create partitions this many days ahead"
    )
    parser.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    from suishen.central.db import DatabaseError  # noqa: PLC0415 (lazy CLI)
    from suishen.central.migrate import MigrationError  # noqa: PLC0415

    try:
        applied, created = asyncio.run(_migrate(database_settings(args), args.days_ahead))
    except MigrationError as exc:
        print(f"suishen hub migrate: {exc}", file=sys.stderr)
        return EXIT_MIGRATION
    except (DatabaseError, OSError) as exc:
        print(f"suishen hub migrate: database unavailable: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("schema up to date")
    print(f"partitions created: {len(created)}")
    return 0


async def _migrate(settings: Any, days_ahead: int) -> tuple[list[str], list[str]]:
    import asyncpg  # noqa: PLC0415 (lazy CLI)

    from suishen.central.db import DatabaseError, open_dsn  # noqa: PLC0415
    from suishen.central.migrate import apply_migrations  # noqa: PLC0415
    from suishen.central.partitions import PartitionPolicy, ensure_partitions  # noqa: PLC0415

    async with open_dsn(settings) as dsn:
        try:
            con = await asyncpg.connect(dsn)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseError(str(exc)) from exc
        try:
            applied = await apply_migrations(con)
            created = await ensure_partitions(
                con,
                today=dt.datetime.now(dt.UTC).date(),
                policy=PartitionPolicy(days_ahead=days_ahead),
            )
        finally:
            await con.close()
    return [f"{m.version:04d}_{m.name}" for m in applied], created
