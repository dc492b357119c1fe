"""Blob storage for images, encodings, previews and render checkpoints.

Keys are relative slash-separated paths such as ``images/<job>/0.png``. The local
store writes through a temporary file and a rename, so a reader (or a process that
crashed mid-write) never sees half a blob. The object store (object_blobs.py) implements
the same protocol; store/blobs_factory.py picks one from the settings.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Protocol

from daguerre.store.private import FILE_MODE, make_dirs, private_dir

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_COUNTER = itertools.count()


class BlobStoreUnavailable(RuntimeError):
    """The blob store cannot be reached or refuses us (an outage, bad credentials, a
    missing bucket): the message says where and what to fix. Not a missing blob, which is
    a KeyError."""


def check_key(key: str) -> str:
    """``key`` if it is a valid blob key (slash-separated names, no ``.`` or ``..``)."""
    # Keys come from our own code, but a check here keeps any future caller from
    # escaping the root (or the object store's prefix) with "..".
    if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The blob's bytes; raises KeyError if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> list[str]:
        """The keys of the blobs directly under ``prefix/`` (none if there are none)."""
        ...

    def delete(self, key: str) -> None:
        """Remove one blob; a missing one is fine."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under ``prefix/``; missing ones are fine."""
        ...

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A URL that downloads the blob without credentials for ``expires_s`` seconds,
        or None where the store has no such thing (the local folder)."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root``: every folder 0700 and every file 0600 (they are
    people's pictures and prompts' renders), whatever the umask."""

    def __init__(self, root: Path) -> None:
        self.root = root
        private_dir(self.root)  # a root made by an older version is tightened too

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        # A name no other writer uses (this process, this thread, a counter), opened
        # exclusively: cheaper than tempfile's random names, and as safe. The folder is
        # made only when the first write into it finds it missing.
        tmp = path.parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_COUNTER)}"
        try:
            fd = os.open(tmp, _CREATE, FILE_MODE)
        except FileNotFoundError:
            make_dirs(path.parent)  # each 0700, the root's too
            fd = os.open(tmp, _CREATE, FILE_MODE)
        except FileExistsError:  # left by a crashed process that had this pid
            tmp.unlink()
            fd = os.open(tmp, _CREATE, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        try:
            names = [entry.name for entry in os.scandir(self._path(prefix)) if entry.is_file()]
        except FileNotFoundError:
            return []
        # A put in progress is a temporary file until its rename: not a blob yet.
        return sorted(f"{prefix}/{name}" for name in names if not name.startswith(".tmp-"))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        """None: a folder has no URLs; the gateway serves its blobs."""
        check_key(key)
        return None
