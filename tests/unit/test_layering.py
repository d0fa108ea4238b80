"""DESIGN §2: dependencies point one way. protocol imports nothing of ours; drivers only
protocol; gateway drivers, protocol and sync; sync protocol only (and never gateway or central);
central protocol and sync. gateway and central share the typed-settings loader (settings.py,
which imports nothing of ours). The composition root (cli, commands, demo/, logs) may use all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "suishen"

ALLOWED = {
    "protocol": {"protocol"},
    "drivers": {"protocol", "drivers"},
    "sync": {"protocol", "sync"},
    "gateway": {"protocol", "drivers", "gateway", "sync", "logs", "settings"},
    "central": {"protocol", "sync", "central", "logs", "settings"},
}


def imports_of(path: Path) -> set[str]:
    """The suishen subpackages a module imports (top-level and lazy imports alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "suishen" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = [(layer, path) for layer in ALLOWED for path in sorted((PACKAGE / layer).rglob("*.py"))]


@pytest.mark.parametrize(
    ("layer", "path"), MODULES, ids=[str(p.relative_to(PACKAGE)) for _, p in MODULES]
)
def test_imports_point_one_way(layer, path):
    """A module imports only the layers its own layer may depend on."""
    forbidden = imports_of(path) - ALLOWED[layer]
    assert not forbidden, f"{path.relative_to(PACKAGE)} imports {sorted(forbidden)}"


def test_settings_imports_nothing_of_ours():
    """settings.py, the loader gateway and central share, depends on no suishen layer."""
    assert imports_of(PACKAGE / "settings.py") == set()
