"""The gateway's state on disk is its own (DESIGN §5: files 0600, directories 0700).

The journal holds sealed identities, masked names and the movements of everyone who passed;
the lists directory holds the watchlist.  ``prepare_state(config)`` runs before the journal
opens: every directory it has to create on the way to the journal and the lists directory is
made 0700, and the journal file is created 0600 when missing (SQLite gives its -wal and -shm
files the main file's permissions) or narrowed to 0600 when it exists.  Directories that
already exist are left as they are: they may be shared parents the operator chose.
"""

from __future__ import annotations

import os
from pathlib import Path

from suishen.gateway.config import GatewayConfig

JOURNAL_SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each new one 0700 (umask or not)."""
    missing: list[Path] = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # made by someone else meanwhile: theirs, left alone
            continue
        path.chmod(0o700)


def make_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600, or narrow an existing one (and its SQLite side
    files) to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for name in (path, *(path.with_name(path.name + s) for s in JOURNAL_SIDE_FILES)):
            if name.exists():
                name.chmod(0o600)


def prepare_state(config: GatewayConfig) -> None:
    """Private directories for the journal and the lists, and a private journal file."""
    make_private_dirs(config.journal.path.parent)
    make_private_dirs(config.lists.directory)
    make_private_file(config.journal.path)
