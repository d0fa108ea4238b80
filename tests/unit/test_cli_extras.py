"""The base install's CLI: optional extras are imported lazily and a command names the one it needs.

Each case runs the real CLI in a fresh interpreter where the extra's modules cannot be imported
(``sys.modules[name] = None`` makes ``import name`` raise ModuleNotFoundError, as on a base
install). CI also runs .ci/smoke-base-install in a venv made with plain ``pip install .``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from suishen.commands.extras import extra_providing

BLOCK = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"
RUN = "from suishen.cli import main\nraise SystemExit(main({argv!r}))\n"


def run_without(modules: tuple[str, ...], argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = BLOCK.format(names=modules) + RUN.format(argv=argv)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


NO_EXTRAS = ("pymodbus", "uhppoted", "osdp", "osdp_sys", "pgserver")


def test_help_works_without_any_extra() -> None:
    """`suishen --help` lists every command group with no extra installed."""
    result = run_without(NO_EXTRAS, ["--help"])
    assert result.returncode == 0, result.stderr
    for command in ("issuer", "code", "id", "sim", "gateway", "hub", "pki", "demo"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["demo"], "devices"),
        (["sim", "turnstile", "--port", "0"], "devices"),
        (["sim", "uhppote"], "devices"),
        (["sim", "osdp"], "osdp"),
    ],
)
def test_command_names_the_extra_it_needs(argv: list[str], extra: str) -> None:
    """A command needing a missing extra exits 2 with one line naming it, not a traceback."""
    result = run_without(NO_EXTRAS, argv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"'{extra}' extra" in result.stderr
    assert f"pip install 'suishen-gate[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulator_of_an_installed_extra_still_runs_its_own_help() -> None:
    """Blocking only the OSDP extra leaves the Modbus turnstile simulator fully registered."""
    result = run_without(("osdp", "osdp_sys"), ["sim", "turnstile", "--help"])
    assert result.returncode == 0, result.stderr
    assert "needs the" not in result.stdout


def test_unrelated_missing_module_is_not_disguised() -> None:
    """Modules map to the extra that installs them; one of no extra maps to None (re-raised)."""
    assert extra_providing("pymodbus.client") == "devices"
    assert extra_providing("osdp_sys") == "osdp"
    assert extra_providing("pgserver") == "hub"
    assert extra_providing("numpy") is None
