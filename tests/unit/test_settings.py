"""suishen.settings: the one typed-settings loader of the gateway and the hub configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from suishen.central import config as hub_config
from suishen.central.config import HubConfig, HubConfigError, load_config, parse_config
from suishen.cli import main
from suishen.gateway.config import GatewayConfig
from suishen.settings import (
    ConfigError,
    iter_settings,
    load_tree,
    optional,
    setting,
    settings_markdown,
)


@pytest.mark.parametrize("tree", [GatewayConfig, HubConfig], ids=["gateway", "hub"])
def test_every_setting_of_both_trees_has_help_text(tree: type) -> None:
    """Walk the gateway's and the hub's trees: a setting without help text fails the test."""
    undocumented = [
        f"{path}.{f.name}"
        for path, _cls, fields in iter_settings(tree)
        for f, _tp in fields
        if len(str(f.metadata.get("help", "")).strip()) < 3
    ]
    assert not undocumented, f"settings without help: {undocumented}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Inner:
    """A section."""

    port: int = setting("a port", 80, ge=0, le=65535)
    silent: int = dataclasses.field(default=1)  # no help text


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Tree:
    """A tree with one undocumented setting."""

    inner: _Inner = setting("the section", factory=_Inner)  # noqa: RUF009 (a Field)
    name: str | None = optional("a name")


def test_markdown_refuses_a_setting_without_help_text() -> None:
    """The generated reference cannot be made while a setting lacks its help text, so the
    regenerate-and-compare tests of SETTINGS.md and HUB_SETTINGS.md fail too."""
    with pytest.raises(TypeError, match=r"'inner\.silent' has no help text"):
        settings_markdown(_Tree, "# x\n")


def test_the_loader_reports_every_problem_with_its_key_path() -> None:
    """Unknown keys (with a suggestion), wrong types and ranges, all at once, by key path."""
    with pytest.raises(ConfigError) as caught:
        load_tree(_Tree, {"inner": {"prot": 1, "port": 70000}, "name": 5})
    assert [str(p) for p in caught.value.problems] == [
        "inner.prot: unknown setting (did you mean 'port'?)",
        "inner.port: must be 0..65535, got 70000",
        "name: must be a string, got an integer (5)",
    ]


def test_hub_config_uses_the_shared_loader(tmp_path: Path) -> None:
    """The hub's file goes through the same loader: key-path problems with suggestions and
    ranges, timeouts checked per key, `~` expanded and relative paths taken from the file's
    directory; the error is a HubConfigError (a ConfigError)."""
    bad = tmp_path / "hub.toml"
    bad.write_text(
        "[gateway_listener]\nport = 70000\n[retention]\ndayz = 3\n",
        encoding="utf-8",
    )
    with pytest.raises(HubConfigError) as caught:
        load_config(bad)
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).splitlines() == [
        "gateway_listener.port: must be 0..65535, got 70000",
        "retention.dayz: unknown setting (did you mean 'days'?)",
    ]
    with pytest.raises(HubConfigError, match=r"^gateway_listener\.body_timeout_s: must be > 0$"):
        parse_config({"gateway_listener": {"body_timeout_s": 0}}, base=tmp_path)
    good = tmp_path / "ok.toml"
    good.write_text('[hub]\nstate_dir = "~/hub"\n[gateway_listener]\npki_dir = "pki"\n')
    config = load_config(good)
    assert config.hub.state_dir == Path("~/hub").expanduser()
    assert config.gateway_listener.pki_dir == tmp_path.resolve() / "pki"
    bad.write_text("[hub\n", encoding="utf-8")
    with pytest.raises(HubConfigError, match="not valid TOML"):
        load_config(bad)


def test_hub_settings_prints_the_hub_settings_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """`suishen hub settings` prints the generated reference (HUB_SETTINGS.md), as
    `suishen gateway settings` prints SETTINGS.md."""
    assert main(["hub", "settings"]) == 0
    out = capsys.readouterr().out
    assert out == hub_config.settings_markdown()
    assert "| `retention.days` | integer, >= 1 | `28` |" in out
