"""`suishen gateway check-config` and `suishen gateway settings`."""

from __future__ import annotations

from pathlib import Path

import pytest

from suishen.cli import main
from suishen.gateway.config import settings_markdown

CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"


def test_check_config_ok_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file: exit 0 and a summary naming the site, its kind and each lane's devices."""
    path = CONFIG_DIR / "construction-site.toml"
    assert main(["gateway", "check-config", "--syntax-only", str(path)]) == 0
    out = capsys.readouterr().out
    assert "construction-metro-line-18-lot-3" in out
    assert "kind construction" in out
    assert "lanes    5" in out
    assert "turnstile-in" in out
    assert "modbus tcp://127.0.0.1:1521 unit 1 coil 0" in out
    assert "uhppote yard-gate door 1" in out
    assert "osdp bus office address 101" in out
    assert "none (offline)" in out


GATEWAY_EXAMPLES = sorted(p for p in CONFIG_DIR.glob("*.toml") if p.name != "hub.toml")


@pytest.mark.parametrize("path", GATEWAY_EXAMPLES, ids=lambda p: p.stem)
def test_check_config_accepts_every_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every example passes check-config --syntax-only (the file alone)."""
    assert main(["gateway", "check-config", "--syntax-only", str(path)]) == 0
    assert "lanes" in capsys.readouterr().out


def test_check_config_checks_the_files_an_example_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --syntax-only check-config checks what `run` would: the repository's example
    names key files that only `site init` makes, and each missing one is an error line naming
    its setting (exit 2), after the summary."""
    assert main(["gateway", "check-config", str(CONFIG_DIR / "office-building.toml")]) == 2
    captured = capsys.readouterr()
    assert "lanes    4" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]
    settings = [line.split()[1].rstrip(":") for line in errors]
    assert "privacy.hub_seal_key_file" in settings
    assert "lists.bundle_key_file" in settings
    assert "hub.ca" in settings


def test_check_config_error_names_the_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid file: exit 2, each problem on stderr with its key path, nothing on stdout."""
    text = (CONFIG_DIR / "venue.toml").read_text(encoding="utf-8")
    text = text.replace('id = "gate-3"', 'id = "gate-3"\ncolour = "red"', 1)
    text = text.replace("coil = 0", "coil = -1", 1)
    bad = tmp_path / "venue.toml"
    bad.write_text(text, encoding="utf-8")
    assert main(["gateway", "check-config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lanes[0].gate.coil: must be 0..65535, got -1" in captured.err
    assert "lanes[2].colour: unknown setting" in captured.err


def test_check_config_on_broken_toml_or_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unparseable or missing files are config errors too: exit 2 with the reason."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n", encoding="utf-8")
    assert main(["gateway", "check-config", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["gateway", "check-config", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_settings_prints_the_settings_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """`suishen gateway settings` prints the generated reference (SETTINGS.md)."""
    assert main(["gateway", "settings"]) == 0
    assert capsys.readouterr().out == settings_markdown()
