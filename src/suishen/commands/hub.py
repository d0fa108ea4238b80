"""`suishen hub ...`: the central hub's commands.

- ``suishen hub migrate [--dsn DSN | --state DIR]``: apply pending migrations from deploy/sql
  and create the daily partitions ahead; with ``--state`` (default ./hub-state) the embedded
  PostgreSQL under DIR/pgdata is started for the job (and let go after).  Exit 0, or 2 when
  the database and the migration files disagree, 1 when the database cannot be reached.

- ``suishen hub keys init [--state DIR] [--force]``: the hub's Ed25519 bundle key and X25519
  sealing key under DIR/keys (0600), with their public halves as PEM files for gateway configs
  (``lists.bundle_key_file``, ``privacy.hub_seal_key_file``).
- ``suishen hub gateway add GATEWAY_ID --site SITE_ID --kind KIND [--cert FILE | --pki DIR]``:
  register the site (if new) and the gateway, and pin its client certificate (from ``suishen
  pki issue-gateway``; default ``pki/gateways/GATEWAY_ID.pem``): the hub accepts that one only.
  ``gateway reissue GATEWAY_ID [--pki DIR]`` issues a new certificate and pins it (the old one
  is refused from the next request on); ``gateway revoke GATEWAY_ID`` refuses the current one
  at once (exit 3: none pinned); ``gateway disable|enable GATEWAY_ID`` (disabled: 403 on
  every request).
- ``suishen hub watchlist add PERSON_KEY --level notify|deny --route police|staff --reason TEXT
  [--expires ISO]`` / ``remove PERSON_KEY``; ``suishen hub trust add --entry FILE`` (a
  trust_entry.json from ``suishen issuer keygen``) / ``remove KID``: change a list and bump its
  bundle version in one transaction; connected gateways receive it within a second.
- ``suishen hub user add|passwd|grant|list|token``: people using the web UI and the API
  (commands/hub_users.py).
- ``suishen hub run --config FILE [--ready-file PATH]``: the hub (central/app.py) until SIGTERM.
  Readiness: the log line ``hub_ready`` and, with --ready-file, PATH written (JSON with pid,
  host, port) once the listener accepts connections; removed at a clean stop.

The list and gateway commands take the database options of ``migrate`` (--dsn | --state).
Exit codes: 0 done, 1 database unreachable, 2 migrations disagree / bad config / bad argument,
3 nothing to do (removing what is not listed).

Each sub-command is one ``_add_<name>(commands)`` function plus its ``run_<name>`` handler.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from suishen.commands import hub_users
from suishen.commands.settings_doc import add_settings_command
from suishen.protocol.vocabulary import AlertRoute, SiteKind, WatchLevel

EXIT_DATABASE = 1  # the database cannot be reached or started
EXIT_MIGRATION = 2  # the database and the migration files disagree
EXIT_USAGE = 2  # a bad config file or argument
EXIT_NOT_FOUND = 3  # remove: the entry was not listed
DEFAULT_STATE_DIR = Path("hub-state")
DEFAULT_PKI_DIR = Path("pki")  # as `suishen pki --dir`
DEFAULT_CONFIG = "hub.toml"  # the hub config a command finds in the folder it runs in


def register(sub: Any) -> None:
    """Add the `hub` group and its commands to the top-level subparsers."""
    group = sub.add_parser("hub", help="the central hub: database, listeners, lists")
    commands = group.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")
    _add_migrate(commands)
    _add_keys(commands)
    _add_gateway(commands)
    _add_watchlist(commands)
    _add_trust(commands)
    _add_run(commands)
    hub_users.register(commands)
    from suishen.commands import hub_alerts  # noqa: PLC0415 - it imports this module

    hub_alerts.add_commands(commands)  # webhook set|list, alerts key-site
    from suishen.commands import hub_ops  # noqa: PLC0415 - it imports this module

    hub_ops.add_commands(commands)  # status, scans
    from suishen.commands import hub_site_ops  # noqa: PLC0415 - it imports this module

    hub_site_ops.add_commands(commands)  # calendar publish|show, site hours|group|emergency
    from suishen.commands import hub_visitors  # noqa: PLC0415 - it imports this module

    hub_visitors.add_commands(commands)  # visitor invite|cancel|list|arrivals
    add_settings_command(commands, config_module="suishen.central.config", what="hub config")


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """--config | --dsn | --state: the database options every hub command shares."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the hub's config (hub.toml): its database and state directory, as `hub run` "
        f"uses them (default: ./{DEFAULT_CONFIG} when it exists)",
    )
    where.add_argument(
        "--dsn",
        help="PostgreSQL (>= 14) DSN without its password, e.g. postgresql://user@host/db; "
        "the password comes from --password-file or $SUISHEN_DB_PASSWORD (never argv)",
    )
    where.add_argument(
        "--state",
        type=Path,
        help=f"hub state directory; embedded PostgreSQL in STATE/pgdata (default: "
        f"{DEFAULT_STATE_DIR}, used when no --dsn)",
    )
    parser.add_argument(
        "--password-file", type=Path, help="file holding the --dsn password (mode 0600)"
    )


def hub_config_of(args: argparse.Namespace) -> Any:
    """The hub config named by --config, or ./hub.toml when neither --dsn nor --state is given
    and it exists; None otherwise. ValueError (one line) for a config that does not load."""
    from suishen.central.config import HubConfigError, load_config  # noqa: PLC0415 (lazy CLI)

    path = getattr(args, "config", None)
    if path is None and not args.dsn and not args.state and Path(DEFAULT_CONFIG).is_file():
        path = Path(DEFAULT_CONFIG)
    if path is None:
        return None
    try:
        return load_config(path)
    except HubConfigError as exc:
        raise ValueError(f"{path}: {exc}".replace("\n", "; ")) from None


def state_dir_of(args: argparse.Namespace) -> Path:
    """The hub's state directory (keys, embedded database): the config's, --state, or the
    default."""
    config = hub_config_of(args)
    if config is not None:
        return Path(config.hub.state_dir)
    return Path(args.state or DEFAULT_STATE_DIR)


def database_settings(args: argparse.Namespace, *, create: bool = False) -> Any:
    """DatabaseSettings from --config / --dsn / --state; a DSN with a password in it is refused
    (ValueError): other local users can read a process's arguments. An embedded database that
    does not exist yet is made only when ``create`` (`hub migrate`); any other command refuses
    with the fix, rather than silently starting an empty database because it was run from
    another folder."""
    from suishen.central.db import (  # noqa: PLC0415 (lazy CLI)
        DEFAULT_PASSWORD_ENV,
        PGDATA_DIR,
        DatabaseSettings,
        dsn_has_password,
        resolve_password,
    )

    config = hub_config_of(args)
    if config is not None:
        from suishen.central.app import database_settings as from_config  # noqa: PLC0415

        settings = from_config(config)
        if settings.dsn is None and not create:
            _require_embedded(Path(config.hub.state_dir), PGDATA_DIR)
        return settings
    if args.dsn:
        if dsn_has_password(args.dsn):
            raise ValueError(
                f"--dsn must not carry a password (argv is visible to every local user): "
                f"use --password-file or ${DEFAULT_PASSWORD_ENV}"
            )
        password = resolve_password(file=args.password_file, env=DEFAULT_PASSWORD_ENV)
        return DatabaseSettings(dsn=args.dsn, password=password)
    state = Path(args.state or DEFAULT_STATE_DIR)
    if not create:
        _require_embedded(state, PGDATA_DIR)
    return DatabaseSettings(state_dir=state)


def _require_embedded(state: Path, pgdata: str) -> None:
    if not (state / pgdata).is_dir():
        raise ValueError(
            f"no hub database in {state / pgdata}: run this in the hub's folder, or give "
            f"--config hub.toml or --state DIR (`suishen hub migrate --state {state}` makes a "
            "new one)"
        )


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
        settings = database_settings(args, create=True)
        applied, created = asyncio.run(_migrate(settings, args.days_ahead))
    except ValueError as exc:
        print(f"suishen hub migrate: {exc}", file=sys.stderr)
        return EXIT_USAGE
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


# --------------------------------------------------------------------------- keys


def _add_keys(commands: Any) -> None:
    keys = commands.add_parser("keys", help="the hub's bundle-signing and sealing keys")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    init = sub.add_parser(
        "init",
        help="make the Ed25519 bundle key and the X25519 sealing key",
        description="Write STATE/keys/bundle.key, seal.key (0600) and their .pub.pem halves.",
    )
    where = init.add_mutually_exclusive_group()
    where.add_argument(
        "--config", type=Path, metavar="FILE", help="the hub's config: its hub.state_dir"
    )
    where.add_argument(
        "--state", type=Path, help=f"hub state directory (default: {DEFAULT_STATE_DIR})"
    )
    init.add_argument("--force", action="store_true", help="replace existing keys")
    init.set_defaults(handler=run_keys_init, dsn=None)


def run_keys_init(args: argparse.Namespace) -> int:
    from suishen.central.keys import HubKeyError, init_keys  # noqa: PLC0415 (lazy CLI)

    try:
        files = init_keys(state_dir_of(args), force=args.force)
    except ValueError as exc:
        print(f"suishen hub keys init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HubKeyError as exc:
        print(f"suishen hub keys init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"bundle key: {files.bundle_key} (gateways pin {files.bundle_public})")
    print(f"sealing key: {files.seal_key} (gateways seal to {files.seal_public})")
    return 0


# --------------------------------------------------------------------------- database jobs


def _with_database(args: argparse.Namespace, job: Any, name: str) -> tuple[int, Any]:
    """Run ``job(con)`` on the hub database (migrated first); map failures to exit codes."""
    from suishen.central.db import DatabaseError  # noqa: PLC0415 (lazy CLI)
    from suishen.central.migrate import MigrationError  # noqa: PLC0415
    from suishen.central.store.lists import ListChangeError  # noqa: PLC0415

    async def main() -> Any:
        import asyncpg  # noqa: PLC0415

        from suishen.central.db import open_database  # noqa: PLC0415

        try:
            async with open_database(database_settings(args)) as pool, pool.acquire() as con:
                return await job(con)
        except (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            raise DatabaseError(str(exc)) from exc

    try:
        return 0, asyncio.run(main())
    except (ListChangeError, ValueError) as exc:
        print(f"suishen hub {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    except MigrationError as exc:
        print(f"suishen hub {name}: {exc}", file=sys.stderr)
        return EXIT_MIGRATION, None
    except (DatabaseError, OSError) as exc:
        print(f"suishen hub {name}: database unavailable: {exc}", file=sys.stderr)
        return EXIT_DATABASE, None


# --------------------------------------------------------------------------- gateway


SITE_KINDS = tuple(kind.value for kind in SiteKind)


def _add_gateway(commands: Any) -> None:
    gateway = commands.add_parser("gateway", help="register gateways and their certificates")
    sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    add = sub.add_parser(
        "add",
        help="register a gateway (and its site, if new) with its client certificate",
        description="Register SITE_ID (if new) and GATEWAY_ID at it, enabled, and pin its "
        "client certificate (the only one the hub accepts for it; a certificate pinned before "
        "is refused from now on).",
    )
    add.add_argument("gateway_id", metavar="GATEWAY_ID")
    add.add_argument("--site", required=True, metavar="SITE_ID", help="the site it guards")
    add.add_argument("--kind", required=True, choices=SITE_KINDS, help="the site's kind")
    add.add_argument("--name", default="", help="the site's display name (new sites)")
    _add_certificate_arguments(add)
    add_database_arguments(add)
    add.set_defaults(handler=run_gateway_add)

    reissue = sub.add_parser(
        "reissue",
        help="issue a new client certificate for a gateway and pin it (the old one is refused)",
        description="Issue PKI/gateways/GATEWAY_ID.pem and .key anew (suishen pki "
        "issue-gateway) and pin the new certificate at the hub in one step.",
    )
    reissue.add_argument("gateway_id", metavar="GATEWAY_ID")
    reissue.add_argument(
        "--pki", type=Path, default=DEFAULT_PKI_DIR, help="PKI directory with the CA"
    )
    add_database_arguments(reissue)
    reissue.set_defaults(handler=run_gateway_reissue)

    revoke = sub.add_parser(
        "revoke",
        help="refuse a gateway's current certificate at once",
        description="Retire GATEWAY_ID's pinned certificate: every request with it gets 403 "
        "from the next one on, until a new certificate is pinned (add --cert, or reissue).",
    )
    revoke.add_argument("gateway_id", metavar="GATEWAY_ID")
    add_database_arguments(revoke)
    revoke.set_defaults(handler=run_gateway_revoke)

    listing = sub.add_parser(
        "list", help="the registered gateways: site, enabled, certificate, sync progress"
    )
    listing.add_argument(
        "--site", action="append", metavar="SITE_ID", help="only these sites (repeatable)"
    )
    add_database_arguments(listing)
    listing.set_defaults(handler=run_gateway_list)

    for name, enabled in (("disable", False), ("enable", True)):
        toggle = sub.add_parser(name, help=f"{name} a gateway (disabled: 403 on every request)")
        toggle.add_argument("gateway_id", metavar="GATEWAY_ID")
        add_database_arguments(toggle)
        toggle.set_defaults(handler=run_gateway_enable, enabled=enabled)


def _add_certificate_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--cert", type=Path, help="the gateway's client certificate (PEM)")
    which.add_argument(
        "--pki",
        type=Path,
        help=f"PKI directory: pin PKI/gateways/GATEWAY_ID.pem (default: {DEFAULT_PKI_DIR})",
    )


def _certificate_sha256(args: argparse.Namespace) -> tuple[str, Any]:
    """The fingerprint and expiry of the gateway's certificate named by --cert / --pki; checks
    that it names GATEWAY_ID.  Raises PkiError."""
    from suishen.sync import pki  # noqa: PLC0415 (lazy CLI)

    path = args.cert or pki.PkiLayout(args.pki or DEFAULT_PKI_DIR).gateway_cert(args.gateway_id)
    cert = pki.load_certificate(path)
    named = pki.gateway_id_from_certificate(cert)
    if named != args.gateway_id:
        raise pki.PkiError(f"{path} is gateway {named!r}'s certificate, not {args.gateway_id!r}")
    return pki.fingerprint(cert), cert.not_valid_after_utc


def registration(
    gateway_id: str, *, site_id: str, kind: str, name: str, cert_sha256: str, not_after: Any
) -> Any:
    """The database job of `hub gateway add` (and `site init`): the site (if new) and the
    gateway at it, with its certificate pinned, in one transaction."""
    from suishen.central.store.gateways import (  # noqa: PLC0415 (lazy CLI)
        pin_certificate,
        register_gateway,
    )

    async def job(con: Any) -> None:
        async with con.transaction():
            await register_gateway(con, gateway_id, site_id=site_id, kind=kind, name=name)
            await pin_certificate(con, gateway_id, cert_sha256, not_after=not_after)

    return job


def run_gateway_add(args: argparse.Namespace) -> int:
    from suishen.sync.pki import PkiError, check_gateway_id  # noqa: PLC0415

    try:
        check_gateway_id(args.gateway_id)
        cert_sha256, not_after = _certificate_sha256(args)
    except PkiError as exc:
        print(f"suishen hub gateway add: {exc}", file=sys.stderr)
        return EXIT_USAGE

    job = registration(
        args.gateway_id,
        site_id=args.site,
        kind=args.kind,
        name=args.name,
        cert_sha256=cert_sha256,
        not_after=not_after,
    )
    code, _ = _with_database(args, job, "gateway add")
    if code == 0:
        print(
            f"gateway {args.gateway_id} registered at {args.site} ({args.kind}), "
            f"certificate sha256 {cert_sha256}"
        )
    return code


def run_gateway_reissue(args: argparse.Namespace) -> int:
    import datetime as dt  # noqa: PLC0415 (lazy CLI)

    from suishen.central.store.gateways import pin_certificate  # noqa: PLC0415
    from suishen.sync import pki  # noqa: PLC0415

    try:
        pki.check_gateway_id(args.gateway_id)
        cert_path, key_path = pki.issue_gateway(
            args.pki, args.gateway_id, now=dt.datetime.now(dt.UTC)
        )
        issued = pki.load_certificate(cert_path)
        cert_sha256, not_after = pki.fingerprint(issued), issued.not_valid_after_utc
    except pki.PkiError as exc:
        print(f"suishen hub gateway reissue: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def job(con: Any) -> None:
        async with con.transaction():
            await pin_certificate(con, args.gateway_id, cert_sha256, not_after=not_after)

    code, _ = _with_database(args, job, "gateway reissue")
    if code == 0:
        print(
            f"gateway {args.gateway_id}: {cert_path} (key {key_path}) pinned, sha256 "
            f"{cert_sha256}; the previous certificate is refused"
        )
    return code


def run_gateway_revoke(args: argparse.Namespace) -> int:
    from suishen.central.store.gateways import revoke_certificate  # noqa: PLC0415 (lazy CLI)

    async def job(con: Any) -> str | None:
        async with con.transaction():
            return await revoke_certificate(con, args.gateway_id)

    code, revoked = _with_database(args, job, "gateway revoke")
    if code == 0 and revoked is None:
        print(f"gateway {args.gateway_id} has no certificate pinned", file=sys.stderr)
        return EXIT_NOT_FOUND
    if code == 0:
        print(f"gateway {args.gateway_id}: certificate sha256 {revoked} revoked")
    return code


def run_gateway_list(args: argparse.Namespace) -> int:
    from suishen.central.scope import Scope  # noqa: PLC0415 (lazy CLI)
    from suishen.central.store.gateways import list_gateways  # noqa: PLC0415

    scope = Scope.sites(args.site) if args.site else Scope.everywhere()
    code, gateways = _with_database(args, lambda con: list_gateways(con, scope), "gateway list")
    if code != 0:
        return code
    print("gateway\tsite\tkind\tenabled\tcertificate\thigh_water\tjournals\tlast_seen")
    for g in gateways:
        seen = g.last_seen_at.isoformat(timespec="seconds") if g.last_seen_at else "-"
        pinned = "pinned" if g.cert_pinned else "none"
        print(
            f"{g.gateway_id}\t{g.site_id}\t{g.site_kind}\t{'yes' if g.enabled else 'no'}\t"
            f"{pinned}\t{g.high_water}\t{g.journals}\t{seen}"
        )
    return 0


def run_gateway_enable(args: argparse.Namespace) -> int:
    from suishen.central.store.gateways import set_enabled  # noqa: PLC0415 (lazy CLI)

    name = "enable" if args.enabled else "disable"
    code, _ = _with_database(
        args, lambda con: set_enabled(con, args.gateway_id, args.enabled), f"gateway {name}"
    )
    if code == 0:
        print(f"gateway {args.gateway_id} {name}d")
    return code


# --------------------------------------------------------------------------- watchlist


def _add_watchlist(commands: Any) -> None:
    watchlist = commands.add_parser("watchlist", help="the watchlist sent to every gateway")
    sub = watchlist.add_subparsers(dest="watchlist_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="add or replace an entry (a new watchlist version)")
    add.add_argument("person_key", metavar="PERSON_KEY", help="64 hex characters")
    add.add_argument("--level", required=True, choices=[level.value for level in WatchLevel])
    add.add_argument("--route", required=True, choices=[route.value for route in AlertRoute])
    add.add_argument("--reason", required=True, help="a short category, no personal data")
    add.add_argument("--expires", help="ISO 8601 time the entry lapses (default: never)")
    add_database_arguments(add)
    add.set_defaults(handler=run_watchlist_add)
    remove = sub.add_parser("remove", help="remove an entry (a new watchlist version)")
    remove.add_argument("person_key", metavar="PERSON_KEY")
    add_database_arguments(remove)
    remove.set_defaults(handler=run_watchlist_remove)


def _parse_expiry(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def run_watchlist_add(args: argparse.Namespace) -> int:
    from suishen.central.store.lists import watchlist_add  # noqa: PLC0415 (lazy CLI)

    try:
        expires = _parse_expiry(args.expires)
    except ValueError:
        print(
            f"suishen hub watchlist add: --expires {args.expires!r} is not ISO 8601",
            file=sys.stderr,
        )
        return EXIT_USAGE

    async def job(con: Any) -> int:
        return await watchlist_add(
            con,
            args.person_key,
            level=args.level,
            route=args.route,
            reason=args.reason,
            expires_at=expires,
        )

    code, version = _with_database(args, job, "watchlist add")
    if code == 0:
        print(f"watchlist version {version}")
    return code


def run_watchlist_remove(args: argparse.Namespace) -> int:
    from suishen.central.store.lists import watchlist_remove  # noqa: PLC0415 (lazy CLI)

    code, version = _with_database(
        args, lambda con: watchlist_remove(con, args.person_key), "watchlist remove"
    )
    if code == 0 and version is None:
        print("not on the watchlist", file=sys.stderr)
        return EXIT_NOT_FOUND
    if code == 0:
        print(f"watchlist version {version}")
    return code


# --------------------------------------------------------------------------- trust


def _add_trust(commands: Any) -> None:
    trust = commands.add_parser("trust", help="the trust list of code-signing keys")
    sub = trust.add_subparsers(dest="trust_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="trust a key (a new trust-list version)")
    add.add_argument(
        "--entry", required=True, type=Path, help="trust_entry.json from `suishen issuer keygen`"
    )
    add_database_arguments(add)
    add.set_defaults(handler=run_trust_add)
    remove = sub.add_parser("remove", help="stop trusting a key (a new trust-list version)")
    remove.add_argument("kid", metavar="KID", help="the key id: base64 (as in the entry) or hex")
    add_database_arguments(remove)
    remove.set_defaults(handler=run_trust_remove)


def run_trust_add(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415 (lazy CLI)

    from suishen.central.store.lists import trust_add  # noqa: PLC0415

    try:
        entry = json.loads(args.entry.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"suishen hub trust add: cannot read {args.entry}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code, result = _with_database(args, lambda con: trust_add(con, entry), "trust add")
    if code == 0:
        kid, version = result
        print(f"trusted kid {kid}; trust version {version}")
    return code


def run_trust_remove(args: argparse.Namespace) -> int:
    from suishen.central.store.lists import trust_remove  # noqa: PLC0415 (lazy CLI)

    code, version = _with_database(args, lambda con: trust_remove(con, args.kid), "trust remove")
    if code == 0 and version is None:
        print("not on the trust list", file=sys.stderr)
        return EXIT_NOT_FOUND
    if code == 0:
        print(f"trust version {version}")
    return code


# --------------------------------------------------------------------------- run


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the hub: the mutual-TLS gateway listener",
        description="Start the database (embedded unless database.dsn), migrate, keep "
        "partitions, serve gateways over mutual TLS until SIGTERM.",
    )
    run.add_argument("--config", required=True, type=Path, help="hub TOML config")
    run.add_argument(
        "--ready-file",
        type=Path,
        help="write this file (JSON: pid, host, port) once the listener accepts connections",
    )
    run.set_defaults(handler=run_run)


def run_run(args: argparse.Namespace) -> int:
    from suishen import logs  # noqa: PLC0415 (lazy CLI)
    from suishen.central.app import run_hub  # noqa: PLC0415
    from suishen.central.config import HubConfigError, load_config  # noqa: PLC0415
    from suishen.central.db import DatabaseError  # noqa: PLC0415
    from suishen.central.keys import HubKeyError  # noqa: PLC0415
    from suishen.central.migrate import MigrationError  # noqa: PLC0415
    from suishen.sync.pki import PkiError  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except HubConfigError as exc:
        print(f"suishen hub run: {args.config}:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(config.hub.log_level)
    try:
        asyncio.run(run_hub(config, ready_file=args.ready_file))
    except (HubKeyError, PkiError) as exc:
        print(f"suishen hub run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MigrationError as exc:
        print(f"suishen hub run: {exc}", file=sys.stderr)
        return EXIT_MIGRATION
    except (DatabaseError, OSError) as exc:
        print(f"suishen hub run: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    return 0
