"""Every third-party module that the package, the benchmarks and the tests import is declared in
pyproject.toml (the base dependencies or an extra), so `make bench` and `make test` work on a
fresh clone. Base-install code (protocol/, commands/) imports only base dependencies at top level.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
OURS = {"suishen", "bench", "tests"}


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


def _with_their_dependencies(names: set[str]) -> set[str]:
    """The distributions and everything they require (aiohttp brings multidict, pgserver psutil)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            wanted = [r for r in requires(name) or [] if "extra ==" not in r]
        except PackageNotFoundError:
            continue
        todo.extend(_names(wanted))
    return seen


BASE = _names(PROJECT["dependencies"])
DECLARED = BASE.union(*(_names(reqs) for reqs in PROJECT["optional-dependencies"].values()))
INSTALLED_WITH_DECLARED = _with_their_dependencies(DECLARED)


def third_party_imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.partition(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in OURS}


@functools.cache
def _installed() -> dict[str, list[str]]:
    return dict(packages_distributions())  # scans every installed distribution: once


def distributions_of(module: str) -> set[str]:
    return {d.lower().replace("_", "-") for d in _installed().get(module, [])}


def files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "path", files("src", "bench", "tests"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_import_is_declared(path: Path) -> None:
    """Each third-party import comes from a distribution pyproject.toml declares."""
    for module in third_party_imports(path):
        dists = distributions_of(module)
        assert dists, f"{module} (imported by {path.name}) is not installed"
        assert dists & INSTALLED_WITH_DECLARED, (
            f"{path.relative_to(ROOT)} imports {module} from {sorted(dists)}, not declared"
        )


@pytest.mark.parametrize(
    "path", files("src/suishen/protocol", "src/suishen/commands"), ids=lambda p: p.name
)
def test_base_install_modules_import_only_base_dependencies(path: Path) -> None:
    """What `suishen --help` loads needs nothing beyond the base install at import time."""
    for module in third_party_imports(path, top_level_only=True):
        assert distributions_of(module) & BASE, f"{path.name} imports {module} at top level"
