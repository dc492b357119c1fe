from __future__ import annotations

from pathlib import Path

import pytest

from daguerre.store.blobs import LocalBlobStore


def test_put_get_exists_delete(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    assert not blobs.exists("images/j1/0.png")
    blobs.put("images/j1/0.png", b"one")
    blobs.put("images/j1/0.png", b"two")  # overwrite is atomic, not an append
    assert blobs.get("images/j1/0.png") == b"two"
    assert blobs.exists("images/j1/0.png")
    blobs.put("images/j1/sub/1.png", b"x")
    blobs.delete_prefix("images/j1")
    assert not blobs.exists("images/j1/0.png")
    blobs.delete_prefix("images/missing")
    with pytest.raises(KeyError):
        blobs.get("images/j1/0.png")


def test_no_temporary_files_left(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.put("a/b.bin", b"data")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/abs", "a//b", "", "a/./b", "sp ace"])
def test_keys_cannot_escape(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        LocalBlobStore(tmp_path).put(key, b"x")
