"""docs/OPERATIONS.md's walkthrough, run as written in an empty folder (issue 14, item 1): from
nothing to a registered site whose scans reach the hub.

Each line of the ```sh walkthrough block runs through bash with this checkout's `suishen` first
on PATH; a line ending in `&` starts a background process (stopped with SIGTERM at the end, each
expected to exit 0). The block's last line (`curl .../status`) is performed by the test itself
with the same URL, polled until the journal's backlog is empty after the scans (curl need not be
installed). Fixed loopback ports, as the document gives them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"
STATUS_URL = "http://127.0.0.1:9180/status"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def walkthrough() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```sh walkthrough\n(.*?)```", text, re.DOTALL)
    assert block is not None, "OPERATIONS.md has no ```sh walkthrough block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _status() -> dict | None:
    try:
        with urllib.request.urlopen(STATUS_URL, timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Every command exits 0; the background processes run; the gateway's scans are allowed
    and acknowledged by the hub (journal backlog 0, rows uploaded), then all stop cleanly."""
    lines = walkthrough()
    assert lines[-1] == f"curl -s {STATUS_URL}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SUISHEN_PEPPER", None)
    background: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for line in lines[:-1]:
            if line.endswith("&"):
                with (tmp_path / f"bg{len(background)}.log").open("wb") as log:
                    process = subprocess.Popen(
                        ["bash", "-c", f"exec {line[:-1].strip()}"],
                        cwd=tmp_path,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                background.append((line, process))
                continue
            done = subprocess.run(
                ["bash", "-c", line],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, (line, done.stdout, done.stderr)
        deadline = time.monotonic() + 90
        while True:
            for line, process in background:
                assert process.poll() is None, (line, _logs(tmp_path))
            status = _status()
            if status is not None:
                upload = status["sync"]["upload"] or {}
                allowed = sum(lane["allowed"] for lane in status["lanes"])
                if (
                    allowed >= 3
                    and status["journal"]["backlog"] == 0
                    and upload.get("rows_uploaded", 0) >= allowed
                ):
                    break
            assert time.monotonic() < deadline, (status, _logs(tmp_path))
            time.sleep(0.5)
        assert status["site"]["id"] == "office-landmark-tower"
        assert status["sync"]["upload"]["forbidden"] is False
    finally:
        for _line, process in reversed(background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        codes = []
        for line, process in reversed(background):
            try:
                codes.append((line, process.wait(timeout=30)))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes.append((line, "killed"))
    assert all(code == 0 for _line, code in codes), (codes, _logs(tmp_path))


def _logs(root: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:]
        for path in sorted(root.glob("bg*.log"))
    )
