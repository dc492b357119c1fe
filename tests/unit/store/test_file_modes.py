"""The data dir, the database (and its -wal and -shm) and every blob folder and file are
for the service's own user alone (0700 / 0600), whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from daguerre.config import Settings
from daguerre.domain import JobSpec
from daguerre.store import open_store
from daguerre.store.private import private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The common umask (022), which would make 0755 folders and 0644 files."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_store_is_private(tmp_path: Path) -> None:
    data = tmp_path / "deep" / "data"
    store = open_store(Settings(data_dir=data))
    try:
        account = store.accounts.create_account("a", "pro", "api")
        store.jobs.create("j", account.id, "api", JobSpec("p", "builtin"))  # a WAL write
        store.blobs.put("uploads/j/source.png", b"png")
        db = data / "daguerre.db"
        assert mode(data) == mode(tmp_path / "deep") == 0o700
        for path in (db, db.with_name("daguerre.db-wal"), db.with_name("daguerre.db-shm")):
            assert path.exists() and mode(path) == 0o600, path
        blobs = data / "blobs"
        for folder in (blobs, blobs / "uploads", blobs / "uploads" / "j"):
            assert mode(folder) == 0o700, folder
        assert mode(blobs / "uploads" / "j" / "source.png") == 0o600
    finally:
        store.close()


def test_what_an_older_version_made_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "blobs").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    (data / "daguerre.db").touch(mode=0o644)
    (data / "daguerre.db-wal").touch(mode=0o644)
    store = open_store(Settings(data_dir=data))
    try:
        assert mode(data) == mode(data / "blobs") == 0o700
        assert mode(data / "daguerre.db") == mode(data / "daguerre.db-wal") == 0o600
    finally:
        store.close()  # (which removes the -wal)


def test_a_shared_sticky_folder_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: not ours to close
    private_dir(shared)
    assert mode(shared) == 0o1777
