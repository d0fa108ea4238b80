"""`suishen site init`: one command from a deployment (PKI, hub keys) to a site ready to run.

    suishen site init DIR --site SITE_ID --kind KIND [--gateway GATEWAY_ID] [--name NAME]
                      [--pki PKI_DIR] [--state HUB_STATE | --dsn DSN [--hub-state DIR]]
                      [--hub-url URL]
                      [--pepper-file FILE] [--no-register] [--force]

It writes a matching set under DIR, every path the config names made by this command:

    DIR/gateway.toml           the kind's example (suishen/gateway/config/examples/), with the
                               site's and gateway's ids, the pepper file and the [hub] link
    DIR/pki/ca.pem             the deployment CA certificate (from PKI_DIR)
    DIR/pki/GATEWAY_ID.pem     the gateway's client certificate, issued from PKI_DIR now
    DIR/pki/GATEWAY_ID.key     its private key (0600)
    DIR/keys/hub-bundle.pub    the hub's bundle-signing public key (gateways pin it)
    DIR/keys/hub-seal.pub      the hub's sealing public key (identities are sealed to it)
    DIR/secrets/pepper         the deployment pepper (0600, directory 0700)

and registers the gateway at the hub's database with its certificate pinned (what `suishen hub
gateway add` does), unless --no-register. The pepper is the deployment's, shared by every gateway
(person keys must join across sites): it is read from --pepper-file (default HUB_STATE/pepper)
and made there, 32 random bytes as hex, when that file does not exist yet.

Every mistake (no CA, no hub keys, DIR already holding a site, a bad id) is one line naming the
fix, exit 2; nothing is half-written (files go to a temporary directory renamed into place).
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from suishen.commands.hub import (
    DEFAULT_STATE_DIR,
    _with_database,
    add_database_arguments,
    registration,
    state_dir_of,
)

EXIT_USAGE = 2
DEFAULT_PKI_DIR = Path("pki")
DEFAULT_HUB_URL = "https://127.0.0.1:8443"
KINDS = {  # site kind -> its example config
    "building": "office-building.toml",
    "construction": "construction-site.toml",
    "hotel": "hotel.toml",
    "venue": "venue.toml",
}


class SiteInitError(Exception):
    """A reason `site init` cannot go on, phrased as what to do."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SitePlan:
    """What `site init` is asked to make."""

    directory: Path
    site_id: str
    kind: str
    gateway_id: str
    name: str
    pki_dir: Path
    hub_state: Path
    hub_url: str
    pepper_file: Path


def register(sub: Any) -> None:
    group = sub.add_parser(
        "site", help="set up a site: its gateway's config, keys and registration"
    )
    commands = group.add_subparsers(dest="site_command", required=True, metavar="COMMAND")
    init = commands.add_parser(
        "init",
        help="write a gateway config, certificate, hub keys and pepper for a site, and "
        "register the gateway at the hub",
        description=__doc__.split("\n\n")[2] if __doc__ else None,
    )
    init.add_argument("directory", type=Path, metavar="DIR", help="the site's folder (new)")
    init.add_argument("--site", required=True, help="the site id, e.g. office-landmark-tower")
    init.add_argument("--kind", required=True, choices=sorted(KINDS), help="the site's kind")
    init.add_argument("--gateway", help="the gateway id (default: gw-SITE)")
    init.add_argument("--name", default="", help="the site's display name")
    init.add_argument(
        "--pki",
        type=Path,
        default=DEFAULT_PKI_DIR,
        help=f"the deployment PKI with its CA (`suishen pki init`; default: {DEFAULT_PKI_DIR})",
    )
    init.add_argument(
        "--hub-state",
        type=Path,
        help="the hub's state directory with its keys (`suishen hub keys init`; default: "
        f"--state, else {DEFAULT_STATE_DIR})",
    )
    init.add_argument(
        "--hub-url", default=DEFAULT_HUB_URL, help=f"the hub's URL (default: {DEFAULT_HUB_URL})"
    )
    init.add_argument(
        "--pepper-file",
        type=Path,
        help="the deployment pepper (default: HUB_STATE/pepper, made there when absent)",
    )
    init.add_argument(
        "--no-register", action="store_true", help="do not register the gateway at the hub"
    )
    init.add_argument("--force", action="store_true", help="replace a site already in DIR")
    add_database_arguments(init)
    init.set_defaults(handler=run_init)


def run_init(args: argparse.Namespace) -> int:
    try:
        hub_state = args.hub_state or state_dir_of(args)
    except ValueError as exc:
        print(f"suishen site init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    plan = SitePlan(
        directory=args.directory,
        site_id=args.site,
        kind=args.kind,
        gateway_id=args.gateway or f"gw-{args.site}",
        name=args.name,
        pki_dir=args.pki,
        hub_state=hub_state,
        hub_url=args.hub_url,
        pepper_file=args.pepper_file or hub_state / "pepper",
    )
    try:
        cert_sha256 = write_site(plan, force=args.force)
    except SiteInitError as exc:
        print(f"suishen site init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"site {plan.site_id} ({plan.kind}): {plan.directory / 'gateway.toml'}")
    print(f"gateway {plan.gateway_id}: certificate sha256 {cert_sha256}")
    if args.no_register:
        print(
            f"not registered: run `suishen hub gateway add {plan.gateway_id} --site "
            f"{plan.site_id} --kind {plan.kind} --cert "
            f"{plan.directory / 'pki' / (plan.gateway_id + '.pem')}` at the hub"
        )
        return 0
    code = _register(args, plan, cert_sha256)
    if code == 0:
        print(
            f"registered at the hub with its certificate pinned; next: suishen gateway run "
            f"--config {plan.directory / 'gateway.toml'}"
        )
    return code


def _register(args: argparse.Namespace, plan: SitePlan, cert_sha256: str) -> int:
    from suishen.sync import pki  # noqa: PLC0415 (lazy CLI)

    cert = pki.load_certificate(plan.directory / "pki" / f"{plan.gateway_id}.pem")
    job = registration(
        plan.gateway_id,
        site_id=plan.site_id,
        kind=plan.kind,
        name=plan.name,
        cert_sha256=cert_sha256,
        not_after=cert.not_valid_after_utc,
    )
    code, _ = _with_database(args, job, "site init")
    return int(code)


# --------------------------------------------------------------------------- writing the set


def write_site(plan: SitePlan, *, force: bool = False) -> str:
    """Write the site's files (all or nothing); the gateway certificate's SHA-256 (hex)."""
    import datetime as dt  # noqa: PLC0415 (lazy CLI)

    from suishen.central.keys import HubKeyFiles  # noqa: PLC0415
    from suishen.sync import pki  # noqa: PLC0415

    try:
        pki.check_gateway_id(plan.gateway_id)
        pki.check_gateway_id(plan.site_id)
    except pki.PkiError as exc:
        raise SiteInitError(str(exc).replace("gateway id", "id")) from None
    target = plan.directory
    if (target / "gateway.toml").exists() and not force:
        raise SiteInitError(
            f"{target} already holds a site (gateway.toml): pass --force to replace it"
        )
    layout = pki.PkiLayout(plan.pki_dir)
    if not layout.ca_key.exists():
        raise SiteInitError(
            f"no deployment CA in {plan.pki_dir}: run `suishen pki init --dir {plan.pki_dir}` "
            "(or give --pki)"
        )
    hub_keys = HubKeyFiles(plan.hub_state)
    if not hub_keys.bundle_public.exists() or not hub_keys.seal_public.exists():
        raise SiteInitError(
            f"no hub keys in {plan.hub_state}: run `suishen hub keys init --state "
            f"{plan.hub_state}` (or give --state / --hub-state)"
        )
    pepper = _deployment_pepper(plan.pepper_file)
    try:
        cert_path, key_path = pki.issue_gateway(
            plan.pki_dir, plan.gateway_id, now=dt.datetime.now(dt.UTC)
        )
    except (pki.PkiError, OSError) as exc:
        raise SiteInitError(
            f"cannot issue the gateway certificate from {plan.pki_dir}: {exc}"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "pki").mkdir(mode=0o700)
        _copy(layout.ca_cert, staging / "pki" / "ca.pem", 0o644)
        _copy(cert_path, staging / "pki" / f"{plan.gateway_id}.pem", 0o644)
        _copy(key_path, staging / "pki" / f"{plan.gateway_id}.key", 0o600)
        _copy(hub_keys.bundle_public, staging / "keys" / "hub-bundle.pub", 0o644)
        _copy(hub_keys.seal_public, staging / "keys" / "hub-seal.pub", 0o644)
        _write(staging / "secrets" / "pepper", pepper + b"\n", 0o600, dir_mode=0o700)
        _write(staging / "gateway.toml", site_config(plan).encode(), 0o644)
        _check_loads(staging / "gateway.toml")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return pki.fingerprint(pki.load_certificate(target / "pki" / f"{plan.gateway_id}.pem"))


def site_config(plan: SitePlan) -> str:
    """The kind's example config made this site's: ids, name, pepper file, hub link."""
    example = resources.files("suishen.gateway.config") / "examples" / KINDS[plan.kind]
    text = example.read_text(encoding="utf-8")
    text = _set_in_table(text, "gateway", "id", plan.gateway_id)
    text = _set_in_table(text, "site", "id", plan.site_id)
    if plan.name:
        text = _set_in_table(text, "site", "name", plan.name)
    text = re.sub(
        r'^pepper_(env|file) = "[^"]*".*$',
        'pepper_file = "secrets/pepper"  # 0600; the deployment pepper (site init)',
        text,
        count=1,
        flags=re.MULTILINE,
    )
    # A connected site's trust list comes signed from the hub; no local trust file.
    text = re.sub(r"^trust_file = .*\n", "", text, flags=re.MULTILINE)
    text = _without_table(text, "hub")
    text = text.replace(
        "# No [hub] section: this site runs offline until a link is installed.\n", ""
    )
    return text.rstrip("\n") + (
        "\n\n[hub]\n"
        f'url = "{plan.hub_url}"\n'
        f'client_cert = "pki/{plan.gateway_id}.pem"\n'
        f'client_key = "pki/{plan.gateway_id}.key"\n'
        'ca = "pki/ca.pem"\n'
    )


def _set_in_table(text: str, table: str, key: str, value: str) -> str:
    """Replace ``key = "..."`` in ``[table]`` (the first one after the table's header)."""
    pattern = re.compile(
        rf'(^\[{re.escape(table)}\]\n(?:(?!^\[).*\n)*?){re.escape(key)} = "[^"]*"', re.MULTILINE
    )
    new, count = pattern.subn(lambda m: f'{m.group(1)}{key} = "{value}"', text, count=1)
    if count != 1:
        raise SiteInitError(f"the example config has no {table}.{key} (a packaging fault)")
    return new


def _without_table(text: str, table: str) -> str:
    """The text without ``[table]`` and its keys (up to the next header)."""
    return re.sub(rf"^\[{re.escape(table)}\]\n(?:(?!^\[).*\n?)*", "", text, flags=re.MULTILINE)


def _deployment_pepper(path: Path) -> bytes:
    try:
        pepper = path.read_bytes().strip()
    except FileNotFoundError:
        pepper = secrets.token_hex(32).encode()
        try:
            _write(path, pepper + b"\n", 0o600, dir_mode=0o700)
        except OSError as exc:
            raise SiteInitError(
                f"cannot write the deployment pepper {path}: {exc.strerror}"
            ) from None
        print(f"made the deployment pepper {path} (0600): every gateway and the hub use this one")
        return pepper
    except OSError as exc:
        raise SiteInitError(f"cannot read the deployment pepper {path}: {exc.strerror}") from None
    if len(pepper) < 16:
        raise SiteInitError(f"the deployment pepper {path} is shorter than 16 bytes")
    return pepper


def _copy(source: Path, target: Path, mode: int) -> None:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise SiteInitError(f"cannot read {source}: {exc.strerror}") from None
    _write(target, data, mode)


def _write(path: Path, data: bytes, mode: int, *, dir_mode: int = 0o755) -> None:
    from suishen.sync.files import write_atomic  # noqa: PLC0415

    write_atomic(path, data, mode=mode, dir_mode=dir_mode)


def _check_loads(config_path: Path) -> None:
    from suishen.gateway.config import ConfigError, load_config  # noqa: PLC0415

    try:
        load_config(config_path)
    except ConfigError as exc:
        raise SiteInitError(
            f"the written config does not load (a packaging fault): {exc}"
        ) from None
