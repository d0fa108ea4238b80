"""`suishen doctor --gateway CONFIG` (issue 14, item 6): one line per finding with the fix; exit
0 without errors, 1 with. Against a site made by `site init` (not running) and a gateway running
over the simulators."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from suishen.cli import main
from suishen.gateway.config import load_config
from suishen.gateway.doctor import examine
from suishen.protocol.checkup import CERT_WARN_DAYS, expiry_check
from tests.integration.gateway_fixtures import running_gateway

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("days_left", "level"),
    [(-1, "error"), (0.5, "warning"), (CERT_WARN_DAYS - 1, "warning"), (CERT_WARN_DAYS + 1, "ok")],
)
def test_certificate_expiry_levels(days_left: float, level: str) -> None:
    """Expired is an error naming the rotation command; within 30 days a warning; else ok."""
    check = expiry_check(
        "hub.client_cert", "c.pem", NOW + dt.timedelta(days=days_left), NOW,
        fix="`suishen hub gateway reissue`",
    )  # fmt: skip
    assert check.level == level
    if level != "ok":
        assert "hub gateway reissue" in check.message


def test_doctor_on_a_fresh_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site just made: the config, certificates and disk are fine; the hub does not answer
    and the gateway is not running, each a warning with what to do; exit 0."""
    monkeypatch.chdir(tmp_path)
    assert main(["pki", "init"]) == 0
    assert main(["hub", "keys", "init", "--state", "hub-state"]) == 0
    argv = ["site", "init", "site", "--site", "s-1", "--kind", "venue", "--no-register"]
    assert main([*argv, "--hub-url", "https://127.0.0.1:9"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--gateway", "site/gateway.toml"]) == 0
    lines = capsys.readouterr().out.splitlines()
    topics = {line.split()[1].rstrip(":"): line.split()[0] for line in lines}
    assert topics["config"] == "ok"
    assert topics["hub.client_cert"] == "ok"
    assert topics["hub"] == "warning"
    assert topics["gateway"] == "warning"
    assert topics["disk"] == "ok"
    assert any("`suishen gateway run`" in line for line in lines)


def test_doctor_finds_a_missing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken installation (the client key deleted): an error line naming it, exit 1."""
    monkeypatch.chdir(tmp_path)
    assert main(["pki", "init"]) == 0
    assert main(["hub", "keys", "init", "--state", "hub-state"]) == 0
    argv = ["site", "init", "site", "--site", "s-1", "--kind", "venue", "--no-register"]
    assert main(argv) == 0
    (tmp_path / "site" / "pki" / "gw-s-1.key").unlink()
    capsys.readouterr()
    assert main(["doctor", "--gateway", "site/gateway.toml"]) == 1
    out = capsys.readouterr().out
    assert "error   hub.client_key: cannot read" in out


async def test_doctor_reads_a_running_gateway(tmp_path: Path) -> None:
    """A running gateway: its health and each device are reported from its own /status, and
    the ports it holds are not reported as taken."""
    async with running_gateway(tmp_path) as gw:
        config = load_config(gw.site.config_path)
        assert gw.service.http_port is not None
        config = dataclasses.replace(
            config, http=dataclasses.replace(config.http, port=gw.service.http_port)
        )
        checks = await examine(config, gw.site.environ)
    by_topic = {c.topic: c for c in checks}
    assert by_topic["health"].level == "ok", checks
    devices = [c for c in checks if c.topic.startswith("device ")]
    assert len(devices) == 4 and all(c.level == "ok" for c in devices), devices
    assert "http.port" not in by_topic
    assert not [c for c in checks if c.level == "error"], checks
