"""The render and finalize activities.

Render drives the model's loop itself so that between steps it can heartbeat, write a
checkpoint every ``checkpoint_every`` steps, publish progress (with a preview), notice a
cancel, and pause for higher-priority work when asked (workers/preemption.py).
Activities run at least once, so everything it stores is keyed by job id and image
index and written as an upsert: running it twice gives the same result.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import anyio
from temporalio import activity
from temporalio.exceptions import ApplicationError

from daguerre.access import DEFERRED_PRIORITY
from daguerre.config import Settings
from daguerre.domain import (
    ImageRecord,
    JobRecord,
    JobSpec,
    JobStatus,
    OutputFormat,
    partial_key,
    partial_steps,
)
from daguerre.engine.contracts import (
    FINALIZE_ACTIVITY,
    RENDER_ACTIVITY,
    FinalizeInput,
    FinalizeOutput,
    RenderInput,
    RenderOutput,
)
from daguerre.models.base import ModelInputError, RenderRequest, RenderResult, RenderState
from daguerre.store import Store
from daguerre.store.progress import ProgressSink, progress_sink
from daguerre.workers import imaging
from daguerre.workers.edits import EditInputs, load_edit_inputs
from daguerre.workers.preemption import ComputeGate, Turn
from daguerre.workers.runtime import ModelRuntime

log = logging.getLogger(__name__)


def checkpoint_key(job_id: str, step: int) -> str:
    return f"checkpoints/{job_id}/{step:06d}.state"


def image_id(job_id: str, index: int) -> str:
    return f"img-{job_id}-{index}"


@dataclass(frozen=True)
class Resume:
    """What the last attempt told Temporal in its heartbeat."""

    step: int = 0
    checkpoint: str | None = None

    @classmethod
    def from_details(cls, details: Any) -> Resume:
        if not details:
            return cls()
        last = details[-1]
        if not isinstance(last, dict):
            return cls()
        return cls(step=int(last.get("step") or 0), checkpoint=last.get("checkpoint"))


class RenderActivities:
    def __init__(
        self,
        runtime: ModelRuntime,
        store: Store,
        settings: Settings,
        gate: ComputeGate | None = None,
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._settings = settings
        # Without a gate from the worker: one render at a time, never paused.
        self._gate = gate if gate is not None else ComputeGate(1, preemption=False)
        self._progress: ProgressSink = progress_sink(settings, store.jobs, store.blobs)

    @activity.defn(name=RENDER_ACTIVITY)
    async def render(self, inp: RenderInput) -> RenderOutput:
        job = await anyio.to_thread.run_sync(self._store.jobs.get, inp.job_id)
        if job is None:
            raise ApplicationError(f"job {inp.job_id} does not exist", type="JobNotFound")
        if job.is_terminal:
            # An earlier attempt finished the job (or its owner cancelled it); say so again.
            return RenderOutput(inp.job_id, job.status.value, [i.id for i in job.images])
        if inp.spec.model != self._runtime.name:
            raise ApplicationError(
                f"model {inp.spec.model!r} is not served by this pool "
                f"(its workers run {self._runtime.name!r})",
                type="WrongModel",
            )
        # A retry resumes from its own last heartbeat.
        resume = Resume.from_details(activity.info().heartbeat_details)
        try:
            return await self._render(job, inp.spec, resume)
        except ModelInputError as err:
            raise ApplicationError(str(err), type="ModelInputError") from err

    async def _render(self, job: JobRecord, spec: JobSpec, resume: Resume) -> RenderOutput:
        attempt = activity.info().attempt
        model = self._runtime.model
        edit = await anyio.to_thread.run_sync(load_edit_inputs, self._store.blobs, spec)
        requests = self._runtime.requests_for(spec, edit.source, edit.mask, edit.encoding)
        # What Temporal hears in every heartbeat, also while the render waits its turn:
        # where a retry would resume.
        beat = {"step": resume.step, "checkpoint": resume.checkpoint}

        def heartbeat(**changes: Any) -> None:
            beat.update(changes)
            activity.heartbeat(dict(beat))

        # Model code runs only while this render holds one of the process's permits; it
        # may wait for one here, and hand it to higher-priority work between steps.
        async with self._gate.turn(job.id, job.priority, job.preemptions, heartbeat) as turn:
            state, resumed_from = await self._start_or_resume(job, requests, resume, attempt)
            running = await anyio.to_thread.run_sync(
                self._store.jobs.mark_running, job.id, attempt, state.total_steps, resumed_from
            )
            if not running:
                return await self._current(job.id)
            # Keep naming the checkpoint we resumed from until there is a newer one, so that
            # a second crash before the next checkpoint still does not start over.
            checkpoint = resume.checkpoint if resumed_from else None
            heartbeat(step=state.step, checkpoint=checkpoint)
            settings = self._settings
            clock = asyncio.get_running_loop().time
            published = clock()
            partials = partial_steps(state.total_steps, spec.partial_images)
            step_started: float | None = None
            pace: float | None = None
            while state.step < state.total_steps:
                if turn.asked_to_pause:
                    if not await self._pause(job, turn, state):
                        return await self._current(job.id)  # cancelled or failed meanwhile
                    step_started = None  # the pause is not part of a step
                # What pausing now would still save: the steps after this one (the next
                # boundary is after it), at the pace measured last (a whole step: the
                # model's plus everything done between steps).
                now = clock()
                if step_started is not None:
                    pace = now - step_started
                step_started = now
                turn.progress(state.step + 1, state.total_steps, pace)
                state = await self._runtime.call(model.step, state)
                if state.step % settings.checkpoint_every == 0 and state.step < state.total_steps:
                    checkpoint = await self._checkpoint(job.id, state)
                partial = partials.index(state.step) if state.step in partials else None
                if partial is not None:
                    # Written before the step is published: a watcher that sees the step
                    # finds the partial image already there.
                    await self._partial(job.id, spec, state, partial)
                if partial is not None or clock() - published >= settings.progress_interval_s:
                    published = clock()
                    if not await self._publish(job.id, state):
                        return await self._current(job.id)  # cancelled or failed meanwhile
                heartbeat(step=state.step, checkpoint=checkpoint)
                if settings.render_step_delay_s:
                    await asyncio.sleep(settings.render_step_delay_s)
            results = await self._runtime.call(model.finish, state)

        # Storing the images is not model work: the permit is already someone else's.
        images = await anyio.to_thread.run_sync(self._store_results, job, spec, results, edit)
        if not await anyio.to_thread.run_sync(self._store.jobs.complete, job.id, images):
            return await self._current(job.id)
        await anyio.to_thread.run_sync(self._progress.notify, job.id)
        await anyio.to_thread.run_sync(self._store.blobs.delete_prefix, f"checkpoints/{job.id}")
        return RenderOutput(job.id, JobStatus.SUCCEEDED.value, [i.id for i in images])

    @activity.defn(name=FINALIZE_ACTIVITY)
    async def finalize(self, inp: FinalizeInput) -> FinalizeOutput:
        changed = await anyio.to_thread.run_sync(
            self._store.jobs.finish, inp.job_id, JobStatus(inp.status), inp.reason, inp.error_code
        )
        await anyio.to_thread.run_sync(self._store.blobs.delete_prefix, f"checkpoints/{inp.job_id}")
        if changed:
            await anyio.to_thread.run_sync(self._progress.notify, inp.job_id)
        return FinalizeOutput(changed=changed)

    # --- steps of a render ---------------------------------------------------------------
    async def _start_or_resume(
        self, job: JobRecord, requests: list[RenderRequest], resume: Resume, attempt: int
    ) -> tuple[RenderState, int | None]:
        """The state to render from, and the step resumed from (None on a first attempt)."""
        model = self._runtime.model
        if resume.checkpoint is not None:
            try:
                data = await anyio.to_thread.run_sync(self._store.blobs.get, resume.checkpoint)
                state = await self._runtime.call(model.load_state, data, requests)
                log.info("job %s: attempt %d resumes at step %d", job.id, attempt, state.step)
                return state, state.step
            except KeyError:
                log.warning(
                    "job %s: checkpoint %s is gone; starting over", job.id, resume.checkpoint
                )
        state = await self._runtime.call(model.start, requests)
        return state, (0 if attempt > 1 else None)

    async def _pause(self, job: JobRecord, turn: Turn, state: RenderState) -> bool:
        """Hand the compute to higher-priority work until it is this render's turn
        again; its state stays in memory. The job row says it waits meanwhile, keeping
        its progress. False if the job stopped (was cancelled) while it waited."""
        if not self._gate.step_aside(turn):
            return True  # the work it was asked for no longer waits: go on
        deferred = job.priority is not None and job.priority >= DEFERRED_PRIORITY
        waits_as = JobStatus.DEFERRED if deferred else JobStatus.QUEUED
        jobs = self._store.jobs
        if not await anyio.to_thread.run_sync(jobs.requeue, job.id, state.step, waits_as):
            return False
        await anyio.to_thread.run_sync(self._progress.notify, job.id)
        log.info("job %s: paused at step %d for higher-priority work", job.id, state.step)
        await self._gate.resume(turn)
        attempt = activity.info().attempt
        running = await anyio.to_thread.run_sync(
            jobs.mark_running, job.id, attempt, state.total_steps, state.step
        )
        if running:
            await anyio.to_thread.run_sync(self._progress.notify, job.id)
        return running

    async def _checkpoint(self, job_id: str, state: RenderState) -> str:
        # Earlier checkpoints stay until the job ends: the attempt that resumes reads the
        # key from the last heartbeat Temporal recorded, which may lag behind this one.
        data = await self._runtime.call(self._runtime.model.save_state, state)
        key = checkpoint_key(job_id, state.step)
        await anyio.to_thread.run_sync(self._store.blobs.put, key, data)
        return key

    async def _publish(self, job_id: str, state: RenderState) -> bool:
        preview_png = await self._runtime.call(self._preview_png, state)
        return await anyio.to_thread.run_sync(
            self._progress.publish, job_id, state.step, preview_png
        )

    async def _partial(self, job_id: str, spec: JobSpec, state: RenderState, index: int) -> None:
        """Partial image ``index``: the model's real preview now, upscaled (nearest) to the
        requested size and encoded as requested, for OpenAI-style streams."""
        data = await self._runtime.call(self._partial_bytes, spec, state)
        if data is not None:
            key = partial_key(job_id, index, spec.output_format)
            await anyio.to_thread.run_sync(self._store.blobs.put, key, data)

    def _partial_bytes(self, spec: JobSpec, state: RenderState) -> bytes | None:
        preview = self._runtime.model.preview(state, 0)
        if preview is None:
            return None
        picture = imaging.fit(preview, spec.width, spec.height)
        return imaging.encode(picture, spec.output_format, spec.output_compression)

    def _preview_png(self, state: RenderState) -> bytes | None:
        preview = self._runtime.model.preview(state, 0)
        return imaging.png(preview) if preview is not None else None

    def _store_results(
        self, job: JobRecord, spec: JobSpec, results: list[RenderResult], edit: EditInputs
    ) -> list[ImageRecord]:
        fmt = OutputFormat(spec.output_format)
        images = []
        for index, result in enumerate(results):
            picture = imaging.fit(result.image, spec.width, spec.height)
            if edit.source is not None and edit.mask is not None:
                picture = imaging.keep_outside_mask(picture, edit.source, edit.mask)
            blob_key = f"images/{job.id}/{index}.{fmt.value}"
            self._store.blobs.put(blob_key, imaging.encode(picture, fmt, spec.output_compression))
            encoding_key = None
            if result.encoding is not None:
                # The model's own encoding, kept for later edits of this image.
                encoding_key = f"images/{job.id}/{index}.encoding"
                self._store.blobs.put(encoding_key, result.encoding)
            images.append(
                ImageRecord(
                    id=image_id(job.id, index),
                    job_id=job.id,
                    index=index,
                    account_id=job.account_id,
                    blob_key=blob_key,
                    encoding_key=encoding_key,
                    media_type=fmt.media_type,
                    width=picture.width,
                    height=picture.height,
                )
            )
        return images

    async def _current(self, job_id: str) -> RenderOutput:
        job = await anyio.to_thread.run_sync(self._store.jobs.get, job_id)
        status = job.status.value if job is not None else JobStatus.FAILED.value
        images = [i.id for i in job.images] if job is not None else []
        return RenderOutput(job_id, status, images)
