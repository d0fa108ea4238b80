"""`suishen hub keys|gateway|watchlist|trust|run` end to end, on the test PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from suishen.central.config import HubConfigError, load_config, settings_markdown
from suishen.cli import main
from suishen.protocol.bundles import open_bundle
from suishen.sync import pki

from .hubkit import body, person, scan_row

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime.now(dt.UTC)


def test_keys_init_writes_private_keys_0600_and_public_pems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys init makes an Ed25519 bundle key and an X25519 sealing key (0600) with public PEM
    halves a gateway config can pin, and refuses to replace them without --force."""
    state = tmp_path / "state"
    assert main(["hub", "keys", "init", "--state", str(state)]) == 0
    keys = state / "keys"
    for name in ("bundle.key", "seal.key"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    bundle_pub = serialization.load_pem_public_key((keys / "bundle.pub.pem").read_bytes())
    seal_pub = serialization.load_pem_public_key((keys / "seal.pub.pem").read_bytes())
    assert isinstance(bundle_pub, ed25519.Ed25519PublicKey)
    assert isinstance(seal_pub, x25519.X25519PublicKey)
    before = (keys / "bundle.key").read_bytes()
    assert main(["hub", "keys", "init", "--state", str(state)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (keys / "bundle.key").read_bytes() == before


async def _cli(*argv: str) -> int:
    """main() in a worker thread: the CLI runs its own event loop."""
    return await asyncio.to_thread(main, list(argv))


async def test_gateway_watchlist_and_trust_commands(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path
) -> None:
    """gateway add registers site and gateway; watchlist add/remove and trust add/remove change
    the lists and bump their versions; removing what is not listed exits 3; a bad person key
    exits 2."""
    dsn = ["--dsn", cli_dsn, "--pki", str(tmp_path / "pki")]
    pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_gateway(tmp_path / "pki", "gw-1", now=NOW)
    pki.issue_gateway(tmp_path / "pki", "gw-2", now=NOW)
    gateway_add = ("hub", "gateway", "add")
    assert await _cli(*gateway_add, "gw-1", "--site", "s-1", "--kind", "hotel", *dsn) == 0
    assert await con.fetchval("SELECT site_id FROM gateways WHERE gateway_id = 'gw-1'") == "s-1"
    assert await con.fetchval("SELECT kind FROM sites WHERE site_id = 's-1'") == "hotel"
    assert await _cli(*gateway_add, "gw-2", "--site", "s-1", "--kind", "venue", *dsn) == 2
    dsn = ["--dsn", cli_dsn]

    add = ("hub", "watchlist", "add", person(1), "--level", "deny", "--route", "police")
    assert await _cli(*add, "--reason", "wanted", "--expires", "2099-01-01T00:00:00Z", *dsn) == 0
    row = await con.fetchrow("SELECT level, route, version, expires_at FROM watchlist")
    assert (row["level"], row["route"], row["version"]) == ("deny", "police", 1)
    assert row["expires_at"].year == 2099
    assert await _cli("hub", "watchlist", "remove", person(1), *dsn) == 0
    assert await _cli("hub", "watchlist", "remove", person(1), *dsn) == 3
    assert await _cli("hub", "watchlist", "add", "nothex", "--level", "deny", "--route",
                      "staff", "--reason", "x", *dsn) == 2  # fmt: skip
    assert await con.fetchval("SELECT version FROM bundle_versions WHERE kind = 'watchlist'") == 2

    issuer_dir = tmp_path / "issuer"
    assert await _cli("issuer", "keygen", "--alg", "EdDSA", "--issuer", "CN-SH",
                      "--out", str(issuer_dir)) == 0  # fmt: skip
    entry = issuer_dir / "trust_entry.json"
    assert await _cli("hub", "trust", "add", "--entry", str(entry), *dsn) == 0
    kid = json.loads(entry.read_text())["kid"]
    assert await con.fetchval("SELECT kid FROM trust_keys WHERE removed_at IS NULL") == kid
    assert await _cli("hub", "trust", "remove", kid, *dsn) == 0
    assert await _cli("hub", "trust", "remove", kid, *dsn) == 3
    assert await con.fetchval("SELECT count(*) FROM audit") == 4


def test_hub_config_reports_every_problem(tmp_path: Path) -> None:
    """A hub config with an unknown key, a wrong type and an out-of-range port names each at its
    key path; the example config loads with paths relative to its directory; every setting has
    help text."""
    bad = tmp_path / "hub.toml"
    bad.write_text(
        '[hub]\nstate_dri = "x"\n[gateway_listener]\nport = "8443"\n[web_listener]\nport = -1\n'
    )
    with pytest.raises(HubConfigError) as caught:
        load_config(bad)
    text = str(caught.value)
    assert "hub.state_dri: unknown setting" in text
    assert "gateway_listener.port: must be an integer" in text
    assert "web_listener.port: must be 0..65535" in text
    example = load_config(REPO / "deploy" / "config" / "hub.toml")
    assert example.gateway_listener.host == "127.0.0.1"
    assert example.gateway_listener.pki_dir == REPO / "deploy" / "config" / "pki"
    assert "retention.days" in settings_markdown()


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], limit_s: float) -> dict:
    """The ready file's JSON once the hub wrote it (the documented readiness signal)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(f"hub exited early: {process.stderr.read().decode()}")
        time.sleep(0.05)
    raise AssertionError("hub did not become ready")


def _start_hub(config: Path, ready: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "suishen", "hub", "run", "--config", str(config),
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def test_hub_run_serves_gateways_and_stops_on_sigterm(
    db_dsn: str, cli_dsn: str, con: asyncpg.Connection, tmp_path: Path
) -> None:
    """`suishen hub run` as a process: it writes its ready file once listening, takes an
    upload and serves a signed watchlist over mutual TLS to a registered gateway, and on
    SIGTERM stops cleanly (exit 0, ready file gone)."""
    layout = pki.init_ca(tmp_path / "pki", now=NOW)
    pki.issue_hub(layout.root, now=NOW)
    pki.issue_gateway(layout.root, "gw-1", now=NOW)
    assert await _cli("hub", "keys", "init", "--state", str(tmp_path / "state")) == 0
    assert await _cli("hub", "gateway", "add", "gw-1", "--site", "s-1", "--kind", "building",
                      "--pki", str(layout.root), "--dsn", cli_dsn) == 0  # fmt: skip
    # The password in a 0600 file the config names (the environment is the other way).
    password = urllib.parse.urlsplit(db_dsn).password or ""
    (tmp_path / "db.pw").write_text(urllib.parse.unquote(password) + "\n")
    (tmp_path / "db.pw").chmod(0o600)
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nstate_dir = "state"\n[database]\ndsn = "{cli_dsn}"\nmin_size = 1\n'
        'password_file = "db.pw"\n'
        '[gateway_listener]\nport = 0\npki_dir = "pki"\n[web_listener]\nport = 0\n'
    )
    ready = tmp_path / "run" / "ready.json"
    process = await asyncio.to_thread(_start_hub, config, ready)
    try:
        info = await asyncio.to_thread(_wait_for_file, ready, process, 30)
        assert info["pid"] == process.pid
        ctx = pki.gateway_ssl_context_for(layout, "gw-1")
        async with aiohttp.ClientSession(
            f"https://localhost:{info['port']}", connector=aiohttp.TCPConnector(ssl=ctx)
        ) as client:
            upload = body("gw-1", [scan_row(1, site_id="s-1")])
            async with client.post("/v1/ingest", json=upload) as r:
                assert (r.status, (await r.json())["high_water"]) == (200, 1)
            poll = asyncio.create_task(client.get("/v1/bundles/watchlist?after=0&wait=20"))
            await asyncio.sleep(0.3)
            add = ("hub", "watchlist", "add", person(9), "--level", "notify", "--route", "staff")
            assert await _cli(*add, "--reason", "check", "--dsn", cli_dsn) == 0
            async with await asyncio.wait_for(poll, 5) as response:
                assert response.status == 200
                data = await response.read()
        pem = await asyncio.to_thread((tmp_path / "state" / "keys" / "bundle.pub.pem").read_bytes)
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, ed25519.Ed25519PublicKey)
        assert open_bundle(data, pinned_key=key, kind="watchlist").version == 1
        assert await con.fetchval("SELECT count(*) FROM scans") == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
        assert not await asyncio.to_thread(ready.exists)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_hub_settings_doc_is_current() -> None:
    """deploy/config/HUB_SETTINGS.md is exactly settings_markdown(): a setting added without
    its help, or a doc left behind, fails here."""
    committed = (REPO / "deploy" / "config" / "HUB_SETTINGS.md").read_text(encoding="utf-8")
    assert committed == settings_markdown()
