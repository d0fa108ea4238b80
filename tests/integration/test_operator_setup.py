"""An operator's path, as a new installer walks it: `site init` writes a matching set, and every
mistake on the way is one line naming the setting, the path and the fix, with exit 2 (issue 14,
items 1-3). Each case runs the real command line in-process (suishen.cli.main)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from suishen.cli import main
from suishen.gateway.config import load_config

SITE = "office-landmark-tower"
GATEWAY = "gw-office-01"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A deployment's CA and hub keys, made with the CLI in a fresh folder (the working dir)."""
    monkeypatch.chdir(tmp_path)
    assert main(["pki", "init"]) == 0
    assert main(["hub", "keys", "init", "--state", "hub-state"]) == 0
    return tmp_path


@pytest.fixture
def site(deployment: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A building site made by `site init` (not registered: no hub database here)."""
    argv = ["site", "init", "sites/office", "--site", SITE, "--kind", "building"]
    assert main([*argv, "--gateway", GATEWAY, "--no-register"]) == 0
    capsys.readouterr()
    return deployment / "sites" / "office" / "gateway.toml"


def test_site_init_writes_a_set_that_check_config_accepts(
    site: Path, deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file the config names exists with the right mode; the config loads with the site's
    ids and the hub link; check-config passes, warning only that the hub does not answer."""
    config = load_config(site)
    assert (config.gateway.id, config.site.id) == (GATEWAY, SITE)
    assert config.hub is not None
    for path in (config.hub.ca, config.hub.client_cert, config.hub.client_key):
        assert path.is_file(), path
    assert config.hub.client_key.stat().st_mode & 0o777 == 0o600
    assert config.privacy.pepper_file is not None
    assert config.privacy.pepper_file.stat().st_mode & 0o777 == 0o600
    assert (
        config.privacy.read_pepper() == (deployment / "hub-state" / "pepper").read_bytes().strip()
    )
    assert main(["gateway", "check-config", str(site)]) == 0
    err = capsys.readouterr().err
    assert one_line(err).startswith("warning hub.url: https://127.0.0.1:8443 does not answer")


def test_a_second_site_shares_the_deployment_pepper(site: Path, deployment: Path) -> None:
    """Person keys join across sites only with one pepper: a second site gets the same one."""
    argv = ["site", "init", "sites/hotel", "--site", "hotel-1", "--kind", "hotel"]
    assert main([*argv, "--no-register"]) == 0
    hotel = load_config(deployment / "sites" / "hotel" / "gateway.toml")
    assert hotel.gateway.id == "gw-hotel-1"
    assert hotel.privacy.read_pepper() == load_config(site).privacy.read_pepper()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--pki", "nowhere"], "no deployment CA in nowhere: run `suishen pki init --dir nowhere`"),
        (["--state", "elsewhere"], "no hub keys in elsewhere: run `suishen hub keys init"),
        (["--site", "bad/id"], "id must be 1-64 letters"),
    ],
)
def test_site_init_mistakes_are_one_line(
    deployment: Path, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong PKI folder, missing hub keys or a bad id: one line with the fix, nothing written."""
    base = ["site", "init", "sites/x", "--site", "x", "--kind", "venue", "--no-register"]
    assert main([*base, *argv]) == 2
    assert expected in one_line(capsys.readouterr().err)
    assert not (deployment / "sites" / "x").exists()


def test_site_init_refuses_to_overwrite_a_site(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing site is kept unless --force."""
    before = site.read_bytes()
    argv = ["site", "init", "sites/office", "--site", SITE, "--kind", "building", "--no-register"]
    assert main(argv) == 2
    assert "already holds a site" in one_line(capsys.readouterr().err)
    assert site.read_bytes() == before
    assert main([*argv, "--force"]) == 0


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _missing_client_key(site: Path) -> str:
    (site.parent / "pki" / f"{GATEWAY}.key").unlink()
    return f"hub.client_key: cannot read {site.parent / 'pki' / (GATEWAY + '.key')}"


def _wrong_pki_dir(site: Path) -> str:
    _edit(site, 'ca = "pki/ca.pem"', 'ca = "pki-old/ca.pem"')
    return f"hub.ca: cannot read {site.parent / 'pki-old' / 'ca.pem'}"


def _pepper_unset(site: Path) -> str:
    _edit(site, 'pepper_file = "secrets/pepper"', 'pepper_env = "SUISHEN_TEST_NO_SUCH_PEPPER"')
    return "privacy.pepper_env: environment variable SUISHEN_TEST_NO_SUCH_PEPPER is not set"


def _pepper_short(site: Path) -> str:
    (site.parent / "secrets" / "pepper").write_bytes(b"0123456789\n")
    return "privacy.pepper: must be at least 16 bytes"


def _key_not_a_key(site: Path) -> str:
    (site.parent / "pki" / f"{GATEWAY}.key").write_text("not a key\n", encoding="utf-8")
    return "hub.client_key:"


@pytest.mark.parametrize(
    "mistake", [_missing_client_key, _wrong_pki_dir, _pepper_unset, _pepper_short, _key_not_a_key]
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_operator_mistakes_are_one_line_naming_the_setting(
    site: Path, mistake, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway run` and `gateway check-config` find the same mistakes before anything starts:
    exit 2, one error line naming the setting and the path (check-config may add the hub
    warning), never a traceback."""
    expected = mistake(site)
    argv = (
        ["gateway", "run", "--config", str(site)]
        if command == "run"
        else ["gateway", "check-config", str(site)]
    )
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "warning" not in line]
    assert len(errors) == 1, errors
    assert expected in errors[0]


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_port_in_use_is_one_line(
    site: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process on the gateway's HTTP port: named, with the setting to change."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        _edit(site, "port = 9180", f"port = {port}")
        argv = (
            ["gateway", "run", "--config", str(site)]
            if command == "run"
            else ["gateway", "check-config", str(site)]
        )
        assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "warning" not in line]
    assert len(errors) == 1, errors
    assert f"http.port: 127.0.0.1:{port} is in use" in errors[0]


def test_an_output_folder_that_does_not_exist_is_one_line(
    deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command writing into a folder that is not there names the folder, not a traceback."""
    assert main(["issuer", "keygen", "--issuer", "CN-SH", "--out", "issuer"]) == 0
    capsys.readouterr()
    png = deployment / "no-such-folder" / "code.png"
    argv = ["issuer", "code", "--key", "issuer", "--idt", "RIC", "--idn", "11010519491231002X"]
    assert main([*argv, "--nm", "A B", "--dob", "1949-12-31", "--png", str(png)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"the folder {png.parent} does not exist; create it" in line
