"""The repo stands alone: no file of the project reads or names a folder beside the checkout
(the public conformance data lives in tests/conformance/data). CI also runs the suite in a
fresh clone with nothing beside it (.ci/run)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIBLING = "sha" + "red"  # spelled apart so this file does not name it
PATTERNS = re.compile(
    rf"\.\./{SIBLING}\b|[\"']{SIBLING}[\"']\s*/|/\s*[\"']{SIBLING}[\"']|parents\[3\]\s*/\s*[\"']{SIBLING}"
)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith("tests/conformance/data/")]


def test_no_file_names_a_folder_beside_the_checkout() -> None:
    """Source, tests, docs, CI and build files never point outside the repository."""
    offenders = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        offenders += [
            f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
            for m in PATTERNS.finditer(text)
        ]
    assert not offenders, offenders
