"""`suishen doctor --hub hub.toml`: is this hub installation well, and if not, what to fix.

In order, one finding per line (protocol/checkup.Check):

- the hub's keys (bundle-signing and sealing) are there and load;
- the PKI: the CA and the hub's server certificate, their expiry;
- the database answers (an embedded one only if it was made: doctor never makes one), its
  migrations are applied, and the gateways' pinned certificates that expire within 30 days
  or already have;
- the running hub: its web listener's /health, or that it is not running;
- the disk where the state directory lives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import aiohttp
from cryptography import x509

from suishen.central.config import HubConfig
from suishen.central.db import PGDATA_DIR, DatabaseSettings, open_database
from suishen.central.keys import HubKeyError, load_bundle_key, load_seal_key
from suishen.central.migrate import applied_migrations, load_migrations
from suishen.protocol.checkup import CERT_WARN_DAYS, Check, Level, expiry_check
from suishen.sync.pki import PkiLayout

PROBE_TIMEOUT_S = 3.0
DISK_WARN_FREE = 0.10


def key_checks(config: HubConfig) -> list[Check]:
    found = []
    for topic, load in (
        ("hub keys (bundle)", load_bundle_key),
        ("hub keys (sealing)", load_seal_key),
    ):
        try:
            load(config.hub.state_dir)
        except HubKeyError as exc:
            fix = f"`suishen hub keys init --state {config.hub.state_dir}` (or restore them)"
            found.append(Check(level="error", topic=topic, message=f"{exc}: {fix}"))
        else:
            found.append(Check(level="ok", topic=topic, message="present and loads"))
    return found


def pki_checks(config: HubConfig, now: dt.datetime) -> list[Check]:
    layout = PkiLayout(config.gateway_listener.pki_dir)
    found = []
    for topic, path in (("pki (CA)", layout.ca_cert), ("pki (hub certificate)", layout.hub_cert)):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            found.append(Check(level="error", topic=topic, message=f"cannot read {path}: {exc}"))
            continue
        found.append(
            expiry_check(
                topic, str(path), cert.not_valid_after_utc, now, fix="`suishen pki issue-hub`"
            )
        )
    return found


async def database_checks(settings: DatabaseSettings, now: dt.datetime) -> list[Check]:
    if settings.dsn is None and settings.state_dir is not None:
        pgdata = Path(settings.state_dir) / PGDATA_DIR
        if not pgdata.is_dir():
            return [
                Check(
                    level="error",
                    topic="database",
                    message=f"no embedded database in {pgdata}: `suishen hub migrate` makes it",
                )
            ]
    try:
        async with (
            asyncio.timeout(60),
            open_database(settings, migrate=False) as pool,
            pool.acquire() as con,
        ):
            applied = await applied_migrations(con)
            pending = [m.name for m in load_migrations() if m.version not in applied]
            expiring = (
                await con.fetch(
                    "SELECT gateway_id, not_after FROM gateway_certificates "
                    "WHERE retired_at IS NULL AND not_after < $1 ORDER BY not_after",
                    now + dt.timedelta(days=CERT_WARN_DAYS),
                )
                if not pending
                else []
            )
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the finding
        return [Check(level="error", topic="database", message=f"unreachable: {exc}")]
    found = [Check(level="ok", topic="database", message="answers")]
    if pending:
        found.append(
            Check(
                level="error",
                topic="migrations",
                message=f"{len(pending)} not applied ({pending[0]}...): `suishen hub migrate`",
            )
        )
    found.extend(
        expiry_check(
            f"gateway {row['gateway_id']}",
            "its certificate",
            row["not_after"],
            now,
            fix=f"`suishen hub gateway reissue {row['gateway_id']}`",
        )
        for row in expiring
    )
    return found


async def running_check(config: HubConfig) -> Check:
    listener = config.web_listener
    url = f"http://{listener.host}:{listener.port}/health"
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as answer:
            body = await answer.json()
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return Check(
            level="warning",
            topic="hub",
            message=f"not running (nothing answers on {url}): `suishen hub run --config ...`",
        )
    status = body.get("status", "?")
    level: Level = "ok" if status == "ok" else "error"
    reasons = "; ".join(body.get("reasons", [])) or "nothing to report"
    return Check(level=level, topic="hub", message=f"{status}: {reasons}")


def disk_check(config: HubConfig) -> Check:
    folder = config.hub.state_dir if config.hub.state_dir.exists() else Path()
    usage = shutil.disk_usage(folder)
    free = usage.free / usage.total if usage.total else 1.0
    level: Level = "warning" if free < DISK_WARN_FREE else "ok"
    fix = "; free space before PostgreSQL runs out" if level != "ok" else ""
    return Check(
        level=level,
        topic="disk",
        message=f"{free:.0%} free on {folder} ({usage.free // 2**20} MiB){fix}",
    )


async def examine(config: HubConfig, settings: DatabaseSettings) -> list[Check]:
    now = dt.datetime.now(dt.UTC)
    found = [Check(level="ok", topic="config", message="loads and validates")]
    found += key_checks(config)
    found += pki_checks(config, now)
    found += await database_checks(settings, now)
    found.append(await running_check(config))
    found.append(disk_check(config))
    return found
