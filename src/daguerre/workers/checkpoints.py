"""Saved render states: how a render outlives its worker, and how a swapped-out one
comes back.

A state is stored as one blob per step it was saved at, ``checkpoints/<job>/<step>``:
a retried attempt resumes from the highest step there, whatever Temporal last heard in
a heartbeat (a kill -9 right after a save still resumes from it), and two saves of one
render never overwrite each other out of order. After each save the one before it is
deleted; the rest go when the job ends.
"""

from __future__ import annotations

from daguerre.blob_layout import checkpoint_key, checkpoint_prefix
from daguerre.store.blobs import BlobStore
from daguerre.store.threads import run_blocking


def _step(key: str) -> int:
    return int(key.rsplit("/", 1)[1].split(".", 1)[0])


class Checkpoints:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._last: dict[str, str] = {}  # job id -> its newest key written here

    def put(self, job_id: str, step: int, data: bytes) -> None:
        """Save a state (blocking), and drop the one this store saved before it."""
        key = checkpoint_key(job_id, step)
        self._blobs.put(key, data)
        previous = self._last.get(job_id)
        self._last[job_id] = key
        if previous is not None and previous != key:
            self._blobs.delete(previous)

    def get(self, job_id: str, step: int) -> bytes:
        return self._blobs.get(checkpoint_key(job_id, step))

    async def save(self, job_id: str, step: int, data: bytes) -> None:
        await run_blocking(self.put, job_id, step, data)

    def latest(self, job_id: str) -> tuple[int, bytes] | None:
        """The newest saved state of a job and its step, or None if it has none.
        Blocking: call it from a thread."""
        keys = self._blobs.keys(checkpoint_prefix(job_id))
        for key in sorted(keys, key=_step, reverse=True):
            try:
                return _step(key), self._blobs.get(key)
            except KeyError:
                continue  # deleted meanwhile by the attempt that wrote a newer one
        return None

    async def clear(self, job_id: str, written_elsewhere: bool = True) -> None:
        """Delete a job's saved states. ``written_elsewhere``: an earlier attempt (in
        another process) may have saved some; otherwise only ones saved here count, and
        a render that saved none costs nothing."""
        if self._last.pop(job_id, None) is None and not written_elsewhere:
            return
        await run_blocking(self._blobs.delete_prefix, checkpoint_prefix(job_id))
