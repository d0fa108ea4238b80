"""Where the public conformance data lives: ../shared/conformance beside the repository
(override with SUISHEN_CONFORMANCE_DIR). Read at test time, never copied into the repo."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFORMANCE_DIR = Path(
    os.environ.get(
        "SUISHEN_CONFORMANCE_DIR",
        Path(__file__).resolve().parents[3] / "shared" / "conformance",
    )
)


def read_jsonl(name: str) -> list[dict[str, Any]]:
    path = CONFORMANCE_DIR / name
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_json(name: str) -> Any:
    return json.loads((CONFORMANCE_DIR / name).read_text(encoding="utf-8"))
