"""`suishen site init` registers the gateway at the hub with its certificate pinned (issue 14,
item 1): the same registration `hub gateway add` makes, in one step with the site's files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from suishen.cli import main
from suishen.sync import pki


async def test_site_init_registers_the_gateway_with_its_certificate(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After site init the hub knows the site (kind, name), the gateway at it, and pins the
    fingerprint of exactly the certificate written into the site's folder."""
    monkeypatch.chdir(tmp_path)
    assert await asyncio.to_thread(main, ["pki", "init"]) == 0
    assert await asyncio.to_thread(main, ["hub", "keys", "init", "--state", "hub-state"]) == 0
    argv = ["site", "init", "hotel", "--site", "hotel-bund", "--kind", "hotel", "--name", "Bund"]
    argv += ["--dsn", cli_dsn, "--hub-state", "hub-state"]
    assert await asyncio.to_thread(main, argv) == 0
    site = await con.fetchrow("SELECT kind, name FROM sites WHERE site_id = 'hotel-bund'")
    assert (site["kind"], site["name"]) == ("hotel", "Bund")
    gateway_site = await con.fetchval(
        "SELECT site_id FROM gateways WHERE gateway_id = 'gw-hotel-bund'"
    )
    assert gateway_site == "hotel-bund"
    pinned = await con.fetchval(
        "SELECT cert_sha256 FROM gateway_certificates WHERE gateway_id = 'gw-hotel-bund' "
        "AND retired_at IS NULL"
    )
    written = pki.fingerprint(
        pki.load_certificate(tmp_path / "hotel" / "pki" / "gw-hotel-bund.pem")
    )
    assert pinned == written
