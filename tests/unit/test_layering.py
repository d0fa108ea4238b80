"""DESIGN §2: dependencies point one way. protocol imports nothing of ours; drivers only
protocol; gateway drivers, protocol and sync; sync protocol only (and never gateway or central);
central protocol and, of sync, only what both sides share: the wire format, the PKI and the
durable file write. gateway and central share the typed-settings loader (settings.py, which
imports nothing of ours). The composition root (cli, commands, demo/, logs) may use all.
"""

from __future__ import annotations

import ast
import re
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


# central/ is the hub: of sync/ it uses only what crosses (the wire format) and the deployment's
# PKI (the hub's TLS context, the peer certificate's gateway id) with its durable file write.
CENTRAL_MAY_USE_OF_SYNC = {"suishen.sync.wire", "suishen.sync.pki", "suishen.sync.files"}


def sync_modules_imported(path: Path) -> set[str]:
    """The suishen.sync modules a module imports (``from suishen.sync import pki`` counts as
    suishen.sync.pki)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("suishen.sync"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "suishen.sync":
                found.update(f"suishen.sync.{alias.name}" for alias in node.names)
            elif node.module.startswith("suishen.sync."):
                found.add(node.module)
    return found


MODULES = [(layer, path) for layer in ALLOWED for path in sorted((PACKAGE / layer).rglob("*.py"))]


@pytest.mark.parametrize(
    ("layer", "path"), MODULES, ids=[str(p.relative_to(PACKAGE)) for _, p in MODULES]
)
def test_imports_point_one_way(layer, path):
    """A module imports only the layers its own layer may depend on."""
    forbidden = imports_of(path) - ALLOWED[layer]
    assert not forbidden, f"{path.relative_to(PACKAGE)} imports {sorted(forbidden)}"


CENTRAL = sorted((PACKAGE / "central").rglob("*.py"))


@pytest.mark.parametrize("path", CENTRAL, ids=[str(p.relative_to(PACKAGE)) for p in CENTRAL])
def test_central_uses_only_the_shared_part_of_sync(path):
    """The hub's code imports from sync/ only the wire format, the PKI and the file write:
    ingest, bundles and partitions live in central/ itself."""
    extra = sync_modules_imported(path) - CENTRAL_MAY_USE_OF_SYNC
    assert not extra, f"{path.relative_to(PACKAGE)} imports {sorted(extra)}"


def test_the_hub_domain_lives_in_central():
    """No hub-only module is left in sync/ (it keeps what both sides share)."""
    left = {p.stem for p in (PACKAGE / "sync").glob("*.py")} & {"ingest", "bundles", "partitions"}
    assert not left, f"sync/ still holds {sorted(left)}"


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.S)
FRONT_DOORS = [
    *sorted((PACKAGE / "commands").rglob("*.py")),
    PACKAGE / "central" / "gateway_api.py",
    *sorted((PACKAGE / "central" / "web").rglob("*.py")),
]


@pytest.mark.parametrize(
    "path", FRONT_DOORS, ids=[str(p.relative_to(PACKAGE)) for p in FRONT_DOORS]
)
def test_front_doors_hold_no_sql(path):
    """The CLI and the HTTP front doors call central/'s functions; no SQL text of their own."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not SQL.search(node.value), f"{path.name}:{node.lineno} holds SQL"


def test_settings_imports_nothing_of_ours():
    """settings.py, the loader gateway and central share, depends on no suishen layer."""
    assert imports_of(PACKAGE / "settings.py") == set()
