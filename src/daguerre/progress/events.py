"""What a watcher of a job learns, as typed events.

A feed (feed.py) turns each change of a job's row into one ``ProgressEvent``: the state
a watcher starts from, then progress, then one terminal event. An event carries what
readers need from the row, so that none of them re-derives the blob layout: the step,
the preview's key (and its bytes, read once for whoever shows them) and the keys of the
partial images already written. A worker stores a step's partial image before it
records the step (workers/progress.py), so every key an event names is there to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daguerre.blob_layout import partial_key
from daguerre.domain import JobRecord, JobStatus, partial_steps

EventKind = Literal["state", "progress", "completed", "failed", "cancelled"]

TERMINAL_EVENT: dict[JobStatus, EventKind] = {
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def written_partials(job: JobRecord) -> tuple[str, ...]:
    """The keys of the partial images the job's worker has stored by its recorded step,
    in order (the i-th is partial image i): those due at a step it has reached."""
    if job.total_steps is None:
        return ()
    due = partial_steps(job.total_steps, job.spec.partial_images)
    fmt = job.spec.output_format
    return tuple(partial_key(job.id, i, fmt) for i, step in enumerate(due) if job.step >= step)


@dataclass(frozen=True)
class ProgressEvent:
    """One thing a watcher of a job learns: its state now, and what it has to show."""

    kind: EventKind
    job: JobRecord
    step: int
    # The latest preview while the job renders (None before the first, and once over).
    preview_key: str | None
    partial_keys: tuple[str, ...]
    preview_png: bytes | None = None

    @classmethod
    def of(cls, kind: EventKind, job: JobRecord, preview_png: bytes | None = None) -> ProgressEvent:
        """The event of ``kind`` for the row ``job``, with the preview read from it."""
        preview = None if job.is_terminal else job.preview_key
        return cls(kind, job, job.step, preview, written_partials(job), preview_png)
