"""``suishen analyst ...``: the analysts' queries and privacy functions on the command line.

The same functions the /api/v1 handlers call (central/queries/ through ``openapi.QUERIES``,
central/reveal.py, central/store/watchlist.py, central/store/audit.py, central/retention.py),
acting as a named hub user (``--as USERNAME``: an analyst or admin of the users table; the
audit trail names them).  Every query command's options are its params Struct's fields
(``--person-key``, ``--days``, ``--second-degree`` ...).

Connection: ``--config FILE`` (the hub's TOML: database, state dir for the sealing key,
[privacy] pepper, [retention]) or, like ``suishen hub``, ``--dsn`` / ``--state``.
A document number is never taken from argv (other local users can read it): commands that
need one read it from standard input.

Output: ``--format table`` (default), ``json`` or ``csv``; json and csv outputs of a query are
exports and are audited.  A progress line on stderr while a query runs (on a terminal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from suishen.commands.hub import (
    DEFAULT_STATE_DIR,
    add_database_arguments,
    database_settings,
    hub_config_of,
)

EXIT_OK = 0
EXIT_DATABASE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FORBIDDEN = 4
EXIT_UNAVAILABLE = 5

EPILOG = """\
exit codes:
  0  done
  1  the database cannot be reached
  2  bad argument or config (a reveal without --reason and --case, a bad key, ...)
  3  not found (no such user, entry or record)
  4  forbidden (--as names a user who is not an analyst or admin; admin-only commands)
  5  unavailable (the hub's sealing key or pepper is missing)
"""

FORMATS = ("table", "json", "csv")
# The rows of a result object for table and CSV output (else its longest list of objects).
MAIN_LISTS = frozenset({"contacts", "rows", "buckets", "hits", "entries", "items", "identities"})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CliUser:
    """The named hub user the command acts as (the audit actor)."""

    user_id: int
    username: str
    role: str
    site_ids: frozenset[str]

    @property
    def scope(self) -> Any:
        from suishen.central.scope import Scope  # noqa: PLC0415 (lazy CLI)

        if self.role in ("analyst", "admin"):
            return Scope.everywhere()
        return Scope.sites(self.site_ids)


class CliError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- parser


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "analyst",
        help="analysts' queries, audited reveal, watchlist and privacy functions",
        description=__doc__.split("\n\n", 1)[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="analyst_command", required=True, metavar="COMMAND", parser_class=_QueryParser
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--as", dest="as_user", required=True, metavar="USERNAME",
                        help="the hub user (analyst or admin) this acts as; audited")  # fmt: skip
    common.add_argument("--format", choices=FORMATS, default="table")
    add_database_arguments(common)
    _add_queries(commands, common)
    _add_privacy(commands, common)


def _sub(commands: Any, common: argparse.ArgumentParser, name: str, help_text: str) -> Any:
    return commands.add_parser(
        name, help=help_text, parents=[common], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip


class _QueryParser(argparse.ArgumentParser):
    """A query's sub-command: its options (the params Struct's fields) are added only when it
    is used (parsed or asked for help), so ``suishen --help`` imports no query module."""

    def __init__(self, *args: Any, query_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._query_name = query_name

    def _load(self) -> None:
        name, self._query_name = self._query_name, None
        if name is None:
            return
        from suishen.central.analyst_queries import load_query  # noqa: PLC0415 (lazy CLI)

        query = load_query(name)
        if query is None:
            self.error(f"the {name} query is not installed in this hub")
        import msgspec  # noqa: PLC0415

        for field in msgspec.structs.fields(query.params):
            flag = "--" + field.encode_name.replace("_", "-")
            dest, meta = f"q_{field.name}", field.encode_name.upper()
            if field.type is bool or field.type == "bool":
                self.add_argument(flag, dest=dest, action="store_const", const=True)
            elif _is_many(field.type):
                self.add_argument(
                    flag, dest=dest, action="append", required=field.required, metavar=meta
                )
            else:
                self.add_argument(flag, dest=dest, required=field.required, metavar=meta)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def _is_many(field_type: Any) -> bool:
    text = str(field_type)
    return any(word in text for word in ("list[", "tuple[", "set[", "frozenset["))


def _add_queries(commands: Any, common: argparse.ArgumentParser) -> None:
    from suishen.central.analyst_queries import QUERIES  # noqa: PLC0415 (light)

    for name in QUERIES:
        parser = commands.add_parser(
            name, help=f"the {name} query", parents=[common], epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter, query_name=name,
        )  # fmt: skip
        parser.set_defaults(handler=_runner(_run_query, query_name=name))


def _add_privacy(commands: Any, common: argparse.ArgumentParser) -> None:
    reveal = _sub(commands, common, "reveal", "open sealed identities (audited)")
    reveal.add_argument("--reason", required=True)
    reveal.add_argument("--case", dest="case_ref", required=True)
    what = reveal.add_mutually_exclusive_group(required=True)
    what.add_argument("--person-key", help="the person's latest sealed scan")
    what.add_argument("--record", action="append", metavar="GATEWAY:SEQ:TS",
                      help="a scan (repeatable); TS in ISO 8601")  # fmt: skip
    reveal.set_defaults(handler=_runner(_run_reveal))

    trail = _sub(commands, common, "audit", "the audit trail (admin)")
    for name in ("actor", "action", "person-key", "case-ref", "since", "until"):
        trail.add_argument(f"--{name}")
    trail.add_argument("--limit", type=int, default=100)
    trail.set_defaults(handler=_runner(_run_audit))

    watch = commands.add_parser("watchlist", help="watchlist management (audited)")
    wsub = watch.add_subparsers(
        dest="watchlist_command", required=True, metavar="COMMAND", parser_class=_QueryParser
    )
    add = _sub(wsub, common, "add", "add an entry: by --person-key, or by --document-type "
               "with the number read from stdin")  # fmt: skip
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--person-key")
    who.add_argument("--document-type", choices=("RIC", "PP", "HMT", "FPR"))
    add.add_argument("--nationality", help="passports: ISO 3166 alpha-3")
    add.add_argument("--level", required=True)
    add.add_argument("--route", required=True)
    add.add_argument("--purpose", required=True)
    add.add_argument("--case", dest="case_ref", required=True)
    add.add_argument("--expires", required=True, help="ISO 8601 time, or N d (days from now)")
    add.add_argument("--reason", default="")
    add.set_defaults(handler=_runner(_run_watchlist_add))
    listing = _sub(wsub, common, "list", "live entries")
    listing.add_argument("--all", action="store_true", help="also removed and expired ones")
    listing.set_defaults(handler=_runner(_run_watchlist_list))
    remove = _sub(wsub, common, "remove", "remove an entry")
    remove.add_argument("person_key", metavar="PERSON_KEY")
    remove.add_argument("--reason", default="")
    remove.set_defaults(handler=_runner(_run_watchlist_remove))

    report = _sub(
        commands, common, "access-report", "a person's own access report (admin); number on stdin"
    )
    report.add_argument("--document-type", required=True, choices=("RIC", "PP", "HMT", "FPR"))
    report.add_argument("--nationality")
    report.add_argument("--reason", required=True)
    report.add_argument("--case", dest="case_ref", required=True)
    report.set_defaults(handler=_runner(_run_access_report))

    kept = _sub(commands, common, "retention", "what is kept and the last retention run")
    kept.set_defaults(handler=_runner(_run_retention))


# --------------------------------------------------------------------------- running


@dataclasses.dataclass(slots=True, kw_only=True)
class Context:
    args: argparse.Namespace
    config: Any  # HubConfig
    con: Any
    user: CliUser

    def pepper(self) -> bytes | None:
        privacy = self.config.privacy
        if privacy.pepper_file is not None:
            try:
                value = Path(privacy.pepper_file).read_bytes().strip()
            except OSError as exc:
                raise CliError(EXIT_UNAVAILABLE, f"cannot read the pepper file: {exc}") from None
        else:
            value = os.environ.get(privacy.pepper_env, "").strip().encode()
        return value if len(value) >= 16 else None


Job = Callable[[Context], Awaitable[int]]


def _hub_config(args: argparse.Namespace) -> Any:
    from suishen.central.config import HubConfig  # noqa: PLC0415 (lazy CLI)

    found = hub_config_of(args)  # --config, or ./hub.toml (as every hub command)
    if found is not None:
        return found
    config = HubConfig()
    return dataclasses.replace(
        config, hub=dataclasses.replace(config.hub, state_dir=args.state or DEFAULT_STATE_DIR)
    )


async def _user(con: Any, username: str) -> CliUser:
    from suishen.central.store.audit import named_user  # noqa: PLC0415 (lazy CLI)

    row = await named_user(con, username)
    if row is None or row.disabled:
        raise CliError(EXIT_NOT_FOUND, f"no enabled hub user {username!r}")
    if row.role not in ("analyst", "admin"):
        raise CliError(EXIT_FORBIDDEN, f"{username} is a {row.role}: analysts and admins only")
    return CliUser(user_id=row.user_id, username=row.username, role=row.role,
                   site_ids=row.site_ids)  # fmt: skip


def _runner(
    job: Callable[..., Awaitable[int]], **bound: Any
) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from suishen.commands.extras import require_extras  # noqa: PLC0415 (lazy CLI)

        require_extras("suishen analyst", "hub")
        return _run(args, lambda ctx: job(ctx, **bound))

    return handler


def _run(args: argparse.Namespace, job: Job) -> int:
    def with_context(config: Any, con: Any, user: Any) -> Awaitable[int]:
        return job(Context(args=args, config=config, con=con, user=user))

    name = f"suishen analyst {args.analyst_command}"
    return run_as_hub_user(args, name=name, resolve_user=_user, job=with_context)


def run_as_hub_user(
    args: argparse.Namespace,
    *,
    name: str,
    resolve_user: Callable[[Any, str], Awaitable[Any]],
    job: Callable[[Any, Any, Any], Awaitable[int]],
) -> int:
    """Run ``job(config, con, user)`` on the hub database as ``--as`` (``resolve_user(con,
    username)`` checks the role), logs on stderr; hub errors become one line and an exit code.
    The runner of `suishen analyst ...` and `suishen hub visitor ...`."""
    import asyncpg  # noqa: PLC0415 (lazy CLI)

    from suishen.central.db import DatabaseError, open_database  # noqa: PLC0415
    from suishen.central.errors import (  # noqa: PLC0415
        BadRequest,
        Forbidden,
        HubError,
        NotFound,
        Unavailable,
    )
    from suishen.central.migrate import MigrationError  # noqa: PLC0415
    from suishen.settings import ConfigError  # noqa: PLC0415

    async def main() -> int:
        config = _hub_config(args)
        settings = database_settings(args)
        try:
            async with open_database(settings) as pool, pool.acquire() as con:
                user = await resolve_user(con, args.as_user)
                return await job(config, con, user)
        except (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            raise DatabaseError(str(exc)) from exc

    mapping: tuple[tuple[type[BaseException], int], ...] = (
        (CliError, -1),
        (Forbidden, EXIT_FORBIDDEN),
        (NotFound, EXIT_NOT_FOUND),
        (BadRequest, EXIT_USAGE),
        (Unavailable, EXIT_UNAVAILABLE),
        (ConfigError, EXIT_USAGE),
        (MigrationError, EXIT_USAGE),
        (ValueError, EXIT_USAGE),
        (HubError, EXIT_USAGE),
        (DatabaseError, EXIT_DATABASE),
        (OSError, EXIT_DATABASE),
    )
    try:
        with _logs_to_stderr():
            return asyncio.run(main())
    except Exception as exc:
        for kind, code in mapping:
            if isinstance(exc, kind):
                print(f"{name}: {exc}", file=sys.stderr)
                return exc.code if isinstance(exc, CliError) else code
        raise


class _Stderr:
    """sys.stderr as it is at each write (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Log lines (warnings and worse) to stderr while the command runs, so stdout holds only
    its output (json and csv are piped); the previous structlog setup is restored after."""
    import structlog  # noqa: PLC0415

    before = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(30),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
    )
    try:
        yield
    finally:
        structlog.configure(**before)


async def _with_progress(label: str, work: Awaitable[Any]) -> Any:
    """Run ``work``; on a terminal, a progress line on stderr while it runs."""
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    tty = sys.stderr.isatty()
    while not task.done():
        await asyncio.wait([task], timeout=0.5)
        if tty and not task.done():
            print(f"\r{label}: {time.monotonic() - started:5.1f} s", end="", file=sys.stderr)
    if tty:
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    return task.result()


# --------------------------------------------------------------------------- output


def _rows_of(value: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(scalar fields, rows): a list is rows; an object's longest list of objects is."""
    if isinstance(value, list | tuple):
        return {}, [r if isinstance(r, dict) else {"value": r} for r in value]
    if not isinstance(value, dict):
        return {}, [{"value": value}]
    lists = [
        (k, v) for k, v in value.items()
        if isinstance(v, list | tuple) and all(isinstance(r, dict) for r in v)
    ]  # fmt: skip
    if not lists:
        return {}, [value]
    preferred = [item for item in lists if item[0] in MAIN_LISTS]
    key, rows = preferred[0] if preferred else max(lists, key=lambda item: len(item[1]))
    scalars = {
        k: v for k, v in value.items() if k != key and not isinstance(v, list | tuple | dict)
    }
    return scalars, list(rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        text = " ".join(map(str, value))
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return csv_safe(text)


def csv_safe(text: str) -> str:
    """A cell a spreadsheet shows as text: a leading =, +, -, @ (a formula) is quoted."""
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


def emit(value: Any, fmt: str, out: Any = None) -> int:
    """Write ``value`` (msgspec Structs, lists) as table, json or csv; return the row count."""
    import msgspec  # noqa: PLC0415

    out = out or sys.stdout
    data = msgspec.to_builtins(value)
    scalars, rows = _rows_of(data)
    if fmt == "json":
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return len(rows)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        out.write(buffer.getvalue())
        return len(rows)
    for key, item in scalars.items():
        out.write(f"{key}: {_cell(item)}\n")
    if columns:
        cells = [[_cell(row.get(c)) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        out.write("\n")
        for row_cells in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(row_cells, widths, strict=True)))
            out.write("\n")
    out.write(f"({len(rows)} rows)\n")
    return len(rows)


# --------------------------------------------------------------------------- jobs


async def _run_query(ctx: Context, *, query_name: str) -> int:
    import msgspec  # noqa: PLC0415

    from suishen.central.analyst_queries import load_query  # noqa: PLC0415
    from suishen.central.errors import BadRequest  # noqa: PLC0415
    from suishen.central.store import audit  # noqa: PLC0415

    query = load_query(query_name)
    assert query is not None
    given = {
        f.encode_name: getattr(ctx.args, f"q_{f.name}")
        for f in msgspec.structs.fields(query.params)
        if getattr(ctx.args, f"q_{f.name}", None) is not None
    }
    try:
        params: Any = msgspec.convert(given, query.params, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"bad option: {exc}") from None
    label = f"suishen analyst {query_name}"
    started = time.monotonic()
    result = await _with_progress(label, query.function(ctx.con, ctx.user.scope, params))
    rows = emit(result, ctx.args.format)
    if ctx.args.format in ("json", "csv"):
        await audit.audit_export(
            ctx.con, ctx.user, what=f"cli:{query_name}.{ctx.args.format}", rows=rows,
            params=msgspec.to_builtins(params),
        )  # fmt: skip
    print(f"{label}: {rows} rows in {time.monotonic() - started:.2f} s", file=sys.stderr)
    return EXIT_OK


def _opener(ctx: Context) -> Any:
    from suishen.central.keys import HubKeyError, load_seal_key  # noqa: PLC0415
    from suishen.protocol.sealing import HubOpener  # noqa: PLC0415

    try:
        return HubOpener(load_seal_key(ctx.config.hub.state_dir))
    except HubKeyError as exc:
        raise CliError(EXIT_UNAVAILABLE, str(exc)) from None


def _record(text: str) -> Any:
    from suishen.central.reveal import RecordRef  # noqa: PLC0415

    gateway, _, rest = text.partition(":")
    seq, _, ts = rest.partition(":")
    try:
        return RecordRef(gateway_id=gateway, seq=int(seq), ts=dt.datetime.fromisoformat(ts))
    except ValueError:
        raise CliError(EXIT_USAGE, f"--record {text!r}: GATEWAY:SEQ:ISO-TIME") from None


async def _run_reveal(ctx: Context) -> int:
    from suishen.central.reveal import check_why, reveal  # noqa: PLC0415

    args = ctx.args
    check_why(args.reason, args.case_ref)
    target = args.person_key if args.person_key else [_record(r) for r in args.record]
    result = await reveal(ctx.con, ctx.user, target, args.reason, args.case_ref,
                          opener=_opener(ctx))  # fmt: skip
    emit(result, args.format)
    print(f"suishen analyst reveal: audited as audit_id {result.audit_id}", file=sys.stderr)
    return EXIT_OK


def _time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(EXIT_USAGE, f"{text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def _run_audit(ctx: Context) -> int:
    from suishen.central.store import audit  # noqa: PLC0415

    audit.require_role(ctx.user, frozenset({"admin"}))
    args = ctx.args
    params = audit.AuditParams(
        actor=args.actor, action=args.action, person_key=args.person_key,
        case_ref=args.case_ref, since=_time(args.since), until=_time(args.until),
        limit=args.limit,
    )  # fmt: skip
    emit(await audit.trail(ctx.con, params), args.format)
    return EXIT_OK


def read_document_number(field: str = "") -> str:
    """A document number from standard input (never argv: other local users can read a
    process's arguments), with a prompt on a terminal; ``field`` names it in the error."""
    if sys.stdin.isatty():
        print("document number: ", end="", file=sys.stderr, flush=True)
    number = sys.stdin.readline().strip()
    if not number:
        where = f"{field}: " if field else ""
        raise CliError(EXIT_USAGE, f"{where}no document number on standard input")
    return number


def _expiry(text: str) -> dt.datetime:
    stripped = text.strip().lower()
    if stripped.endswith("d") and stripped[:-1].strip().isdigit():
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=int(stripped[:-1]))
    value = _time(text)
    assert value is not None
    return value


async def _run_watchlist_add(ctx: Context) -> int:
    from suishen.central.store import watchlist as wl  # noqa: PLC0415

    args = ctx.args
    document = None
    if args.document_type:
        number = read_document_number()
        document = wl.Document(idt=args.document_type, idn=number, nat=args.nationality)
    entry = wl.WatchlistAdd(
        level=args.level, route=args.route, purpose=args.purpose, case_ref=args.case_ref,
        expires_at=_expiry(args.expires), document=document, person_key=args.person_key,
        reason=args.reason,
    )  # fmt: skip
    added = await wl.add(ctx.con, ctx.user, entry, pepper=ctx.pepper(), now=dt.datetime.now(dt.UTC),
                         max_days=ctx.config.privacy.watchlist_max_days)  # fmt: skip
    emit(added, args.format)
    return EXIT_OK


async def _run_watchlist_list(ctx: Context) -> int:
    from suishen.central.store import watchlist as wl  # noqa: PLC0415

    entries = await wl.list_entries(ctx.con, wl.WatchlistParams(include_removed=ctx.args.all))
    emit(entries, ctx.args.format)
    return EXIT_OK


async def _run_watchlist_remove(ctx: Context) -> int:
    from suishen.central.store import watchlist as wl  # noqa: PLC0415

    removed = await wl.remove(ctx.con, ctx.user, ctx.args.person_key, reason=ctx.args.reason)
    emit(removed, ctx.args.format)
    return EXIT_OK


async def _run_access_report(ctx: Context) -> int:
    from suishen.central.reveal import AccessReportRequest, access_report  # noqa: PLC0415
    from suishen.central.store import audit  # noqa: PLC0415
    from suishen.central.store.watchlist import Document  # noqa: PLC0415

    args = ctx.args
    audit.require_role(ctx.user, frozenset({"admin"}))
    request = AccessReportRequest(
        document=Document(idt=args.document_type, idn=read_document_number(), nat=args.nationality),
        reason=args.reason, case_ref=args.case_ref,
    )  # fmt: skip
    report = await access_report(ctx.con, ctx.user, request, pepper=ctx.pepper())
    emit(report, args.format)
    return EXIT_OK


async def _run_retention(ctx: Context) -> int:
    from suishen.central import retention  # noqa: PLC0415

    kept = ctx.config.retention
    policy = retention.RetentionPolicy(
        days=kept.days, stays_days=kept.stays_days, keep_alerts_days=kept.keep_alerts_days,
        keep_audit_days=kept.keep_audit_days,
    )  # fmt: skip
    emit(await retention.status(ctx.con, policy=policy), ctx.args.format)
    return EXIT_OK
