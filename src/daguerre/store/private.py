"""Folders (0700) and files (0600) that only the service's own user may read.

The data dir holds prompts, key hashes, webhook URLs and secrets (the database, the
blobs, the URL-signing key, Temporal's own database): none of it is for other users of
the machine, whatever the umask says. New folders and files are created with these
modes (the umask can only take bits away), and the ones an older version made with the
umask's are tightened when the store opens. A folder that is not ours to tighten (owned
by someone else, or a shared sticky folder such as /tmp) is left alone, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Make ``path`` a folder only its owner may enter: create it and any missing
    parents 0700, or tighten it if it exists."""
    make_dirs(path)
    tighten(path, DIR_MODE)


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 (``Path.mkdir(parents=True)``
    gives the parents it makes the umask's mode)."""
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            folder.mkdir(mode=DIR_MODE)


def private_file(path: Path) -> None:
    """Make ``path`` a file only its owner may read: create it empty (0600) if it is
    missing, or tighten it. Before SQLite opens a database, so that SQLite, which gives
    its -wal and -shm files the database file's mode, makes those 0600 too."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        tighten(path, FILE_MODE)
    else:
        os.close(fd)


def tighten(path: Path, mode: int) -> None:
    """Take away every permission bit beyond ``mode`` from ``path``, when it is ours."""
    try:
        info = path.stat()
        if stat.S_IMODE(info.st_mode) & ~mode == 0:
            return
        if info.st_uid != os.getuid() or info.st_mode & stat.S_ISVTX:
            log.warning("%s is readable by others, and not ours to change (%o)", path, info.st_mode)
            return
        path.chmod(stat.S_IMODE(info.st_mode) & mode)
    except OSError as err:
        log.warning("could not make %s private: %s", path, err)
