"""What watchers of a job see while its render runs: the job row, the latest preview
and the partial images a stream asked for.

The render loop hands every engine update to ``Progress.publish``. Row changes go
through the worker's batched ``JobRows``, whose commit announces them to the gateways
(daguerre/progress); images are written first, so that a watcher that sees a step finds
its partial image already stored. ``publish`` says False once the job is over (its
owner cancelled it): the render then stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from daguerre import priority as priorities
from daguerre.blob_layout import partial_key, preview_key
from daguerre.domain import JobSpec, JobStatus
from daguerre.store import Store
from daguerre.workers import imaging
from daguerre.workers.engine import Update
from daguerre.workers.job_rows import JobRows


@dataclass(frozen=True)
class JobRef:
    """The job a render works for, as its row writes need it."""

    job_id: str
    spec: JobSpec
    attempt: int
    priority: int


class Progress:
    def __init__(self, rows: JobRows, store: Store) -> None:
        self._rows = rows
        self._store = store

    async def publish(self, job: JobRef, update: Update) -> bool:
        job_id, step = job.job_id, update.step
        # Row changes are noted, not waited for: they go out with this turn's batch, and
        # one that finds the job over (cancelled) makes stopped() say so.
        if update.kind == "started":
            total, resumed_from = update.total_steps, update.resumed_from
            if resumed_from is None and job.attempt > 1:
                resumed_from = 0  # a retry with no checkpoint to resume from: from scratch
            self._rows.note(job_id, lambda c: c.mark_running(job_id, total, resumed_from))
        elif update.kind == "paused":
            waits_as = (
                JobStatus.DEFERRED if priorities.is_deferred(job.priority) else JobStatus.QUEUED
            )
            self._rows.note(job_id, lambda c: c.requeue(job_id, step, waits_as))
        elif update.kind == "resumed":
            self._rows.note(job_id, lambda c: c.resume_running(job_id, step))
        elif update.kind == "step":
            if update.partial is not None:
                index, image = update.partial
                await self._store.run(self._put_partial, job, index, image)
            key = None
            if update.preview is not None:
                key = preview_key(job_id)
                await self._store.run(self._put_preview, key, update.preview)
            self._rows.progress(job_id, step, key)
        return not self._rows.stopped(job_id)

    def _put_partial(self, job: JobRef, index: int, image: Image.Image) -> None:
        """Partial image ``index``: the model's preview now, at the requested size and
        format (OpenAI-style streams send it as is)."""
        spec = job.spec
        picture = imaging.finish(image, spec.width, spec.height, spec.background)
        data = imaging.encode(picture, spec.output_format, spec.output_compression)
        self._store.blobs.put(partial_key(job.job_id, index, spec.output_format), data)

    def _put_preview(self, key: str, image: Image.Image) -> None:
        self._store.blobs.put(key, imaging.png(image))
