"""Where the public conformance data lives: tests/conformance/data/, kept in the repository with
its sources and licences (data/README.md), so a fresh clone tests itself with nothing beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFORMANCE_DIR = Path(__file__).resolve().parent / "data"


def read_jsonl(name: str) -> list[dict[str, Any]]:
    path = CONFORMANCE_DIR / name
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_json(name: str) -> Any:
    return json.loads((CONFORMANCE_DIR / name).read_text(encoding="utf-8"))
