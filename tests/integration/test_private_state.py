"""The gateway's state on disk is private: directories 0700, the journal and its WAL files
0600 (DESIGN §5), whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.gateway.config import load_config
from suishen.gateway.journal import Journal
from suishen.gateway.private import prepare_state

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(old)


async def test_journal_and_lists_directories_are_private(tmp_path: Path, open_umask: None) -> None:
    """With umask 022, the state directories the gateway creates are 0700 (each new level) and
    the journal, with the -wal and -shm files SQLite makes beside it, is 0600; an existing
    journal left 0644 by an older gateway is narrowed to 0600."""
    config = load_config(REPO / "deploy" / "config" / "office-building.toml", base_dir=tmp_path)
    journal_path = config.journal.path
    assert journal_path.is_relative_to(tmp_path)
    prepare_state(config)
    for directory in {journal_path.parent, config.lists.directory}:
        level = directory
        while level != tmp_path:
            assert mode(level) == 0o700, level
            level = level.parent
    async with Journal(
        config.journal,
        gateway_id=config.gateway.id,
        site_id=config.site.id,
        hub_public_key=X25519PrivateKey.generate().public_key(),
    ):
        files = [
            journal_path,
            *(journal_path.with_name(journal_path.name + s) for s in ("-wal", "-shm")),
        ]
        assert all(f.exists() for f in files)
        assert [mode(f) for f in files] == [0o600] * 3
    journal_path.chmod(0o644)
    prepare_state(config)
    assert mode(journal_path) == 0o600
