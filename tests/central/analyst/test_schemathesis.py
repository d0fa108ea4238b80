"""The whole analyst API against its own document with schemathesis (its CLI, as CI runs it):
property-based requests from the OpenAPI document to a loopback hub, with an admin's bearer
token (every operation is reachable); checks: no 500 (not_a_server_error) and every status
documented (status_code_conformance)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from suishen.central.config import HubConfig
from suishen.central.store import users

from .test_api import web_config as keyed_config

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def web_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubConfig:
    """The hub has its sealing key and pepper (a reveal can open; a document has a key)."""
    return keyed_config.__wrapped__(tmp_path, monkeypatch)  # type: ignore[attr-defined]


async def test_schemathesis_finds_no_500_and_no_undocumented_status(
    web_server: Any, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """schemathesis run (examples, coverage, fuzzing; a fixed seed, a bounded number of examples
    per operation) exits 0 against the served document."""
    async with db_pool.acquire() as con:
        await users.add_user(con, "st", role="admin", password="x" * 12, display_name="st")
        token = await users.create_token(con, "st")
    url = str(web_server.make_url("/api/v1/openapi.json"))
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", url,
        "--checks", "not_a_server_error,status_code_conformance",
        "-H", f"Authorization: Bearer {token}",
        "--max-examples", os.environ.get("SUISHEN_SCHEMATHESIS_EXAMPLES", "25"),
        "--seed", "11", "--workers", "1", "--request-timeout", "20",
        "--suppress-health-check", "all",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=900)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
