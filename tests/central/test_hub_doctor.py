"""`suishen doctor --hub hub.toml` (issue 14, item 6): keys, PKI expiry, database and migrations,
gateways' certificates expiring within 30 days, the running hub, disk; one line per finding
with the fix; exit 1 on an error."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from suishen.cli import main
from tests.central.hubkit import register


async def _doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    code = await asyncio.to_thread(main, ["doctor", "--hub", str(config)])
    lines = capsys.readouterr().out.splitlines()
    return code, {line.split(": ", 1)[0][8:]: line for line in lines}


async def test_hub_doctor(
    cli_dsn: str, con: asyncpg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sound hub with a gateway whose certificate runs out in 10 days: a warning naming the
    gateway and the reissue command, exit 0; without its keys: errors naming the fix, exit 1."""
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nstate_dir = "state"\n\n[database]\ndsn = "{cli_dsn}"\n'
        'password_env = "SUISHEN_DB_PASSWORD"\n\n[gateway_listener]\npki_dir = "pki"\n\n'
        "[web_listener]\nport = 9\n",
        encoding="utf-8",
    )
    assert main(["pki", "init", "--dir", str(tmp_path / "pki")]) == 0
    assert main(["pki", "issue-hub", "--dir", str(tmp_path / "pki")]) == 0
    assert main(["hub", "keys", "init", "--config", str(config)]) == 0
    await register(con, "gw-soon")
    await con.execute(
        "INSERT INTO gateway_certificates (cert_sha256, gateway_id, not_after) VALUES ($1, $2, $3)",
        "ab" * 32,
        "gw-soon",
        dt.datetime.now(dt.UTC) + dt.timedelta(days=10),
    )
    capsys.readouterr()
    code, found = await _doctor(config, capsys)
    assert code == 0, found
    assert found["database"].startswith("ok")
    assert found["pki (hub certificate)"].startswith("ok")
    assert found["hub keys (sealing)"].startswith("ok")
    assert found["gateway gw-soon"].startswith("warning")
    assert "hub gateway reissue gw-soon" in found["gateway gw-soon"]
    assert found["hub"].startswith("warning") and "not running" in found["hub"]

    for key in (tmp_path / "state" / "keys").glob("*.key"):
        key.unlink()
    code, found = await _doctor(config, capsys)
    assert code == 1
    assert found["hub keys (bundle)"].startswith("error")
    assert "hub keys init" in found["hub keys (bundle)"]
