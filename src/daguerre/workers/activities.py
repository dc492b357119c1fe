"""The render and finalize activities of a worker process.

A render activity never runs the model itself: it hands its job to the process's
engine (workers/engine.py), which steps every render the process holds in one batch,
and follows the job's updates. Its loop is short on purpose; each line is one
collaborator:

- the **heartbeat** tells Temporal the render is alive (and hears a cancel), no more
  often than a liveness check needs: a render shorter than that never heartbeats;
- the **checkpoints** keep the state a retried attempt resumes from;
- **progress** keeps the job row, the preview and the partial images up to date, in
  batched writes, and says when the job is over (cancelled meanwhile);
- the **results** are stored once the engine hands over the images.

Activities run at least once: everything they store is keyed by job id (and image
index, and step) and written as an upsert, so running one twice gives the same result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from temporalio import activity
from temporalio.exceptions import ApplicationError

from daguerre import priority as priorities
from daguerre.config import PoolSettings, Settings
from daguerre.domain import JobStatus
from daguerre.engine.contracts import (
    FINALIZE_ACTIVITY,
    RENDER_ACTIVITY,
    FinalizeInput,
    FinalizeOutput,
    RenderInput,
    RenderOutput,
)
from daguerre.models.base import ModelInputError, RenderResult
from daguerre.store import Store
from daguerre.store.progress import announcer
from daguerre.workers.checkpoints import Checkpoints
from daguerre.workers.edits import EditInputs, load_edit_inputs
from daguerre.workers.engine import Engine, RenderJob, SwapStore, Ticket, Update
from daguerre.workers.job_rows import JobRows
from daguerre.workers.progress import JobRef, Progress
from daguerre.workers.results import store_images
from daguerre.workers.runtime import ModelRuntime
from daguerre.workers.scheduler import Scheduler

log = logging.getLogger(__name__)


class Heartbeat:
    """Temporal hears from a render every ``interval_s`` at most, starting that long
    after it began: enough to notice a dead worker (and to deliver a cancel) within the
    heartbeat timeout. Resuming needs no heartbeat: it reads the newest checkpoint."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = time.monotonic() + interval_s
        self.step = 0

    def beat(self, update: Update | None) -> None:
        if update is not None:
            self.step = update.step
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval_s
            activity.heartbeat({"step": self.step})


async def _updates(ticket: Ticket, keepalive_s: float) -> AsyncIterator[Update | None]:
    """The ticket's updates, and None whenever none came for ``keepalive_s``."""
    while True:
        try:
            async with asyncio.timeout(keepalive_s):
                yield await ticket.updates.get()
        except TimeoutError:
            yield None


class RenderActivities:
    def __init__(
        self,
        runtime: ModelRuntime,
        store: Store,
        settings: Settings,
        engine: Engine,
        rows: JobRows,
        checkpoints: Checkpoints,
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._settings = settings
        self._engine = engine
        self._rows = rows
        self._checkpoints = checkpoints
        self._progress = Progress(rows, store.blobs)
        # A third of the timeout: two beats may be late before Temporal gives up on it.
        self._heartbeat_s = settings.heartbeat_timeout_s / 3

    @activity.defn(name=RENDER_ACTIVITY)
    async def render(self, inp: RenderInput) -> RenderOutput:
        if inp.spec.model != self._runtime.name:
            raise ApplicationError(
                f"model {inp.spec.model!r} is not served by this pool "
                f"(its workers run {self._runtime.name!r})",
                type="WrongModel",
            )
        info = activity.info()
        priority = (info.priority.priority_key if info.priority else None) or priorities.DEFAULT
        job = JobRef(inp.job_id, inp.spec, info.attempt, priority)
        if info.attempt > 1:
            # An earlier attempt may have finished the job (or its owner cancelled it).
            current = await self._current(inp.job_id)
            if JobStatus(current.status).is_terminal:
                return current
        try:
            return await self._render(job, inp, info.priority.fairness_key or "")
        except ModelInputError as err:
            raise ApplicationError(str(err), type="ModelInputError") from err

    async def _render(self, job: JobRef, inp: RenderInput, fairness_key: str) -> RenderOutput:
        edit = await anyio.to_thread.run_sync(load_edit_inputs, self._store.blobs, inp.spec)
        request = await self._request(job, edit, fairness_key)
        heartbeat = Heartbeat(self._heartbeat_s)
        results: list[RenderResult] = []
        self._rows.track(job.job_id)
        try:
            async with self._engine.render(request) as ticket:
                async for update in _updates(ticket, self._heartbeat_s):
                    heartbeat.beat(update)
                    if update is None:
                        continue
                    ticket.watch(self._rows.watched(job.job_id))
                    if update.checkpoint is not None:
                        await self._checkpoints.save(job.job_id, update.step, update.checkpoint)
                    if update.kind == "failed":
                        assert update.error is not None
                        raise update.error
                    if update.kind == "finished":
                        results = update.results or []
                        break
                    if not await self._progress.publish(job, update):
                        return await self._current(job.job_id)  # cancelled meanwhile
        finally:
            self._rows.untrack(job.job_id)
        return await self._complete(job, inp, results, edit)

    async def _request(self, job: JobRef, edit: EditInputs, fairness_key: str) -> RenderJob:
        """What the engine needs, with the newest checkpoint for a retried attempt."""
        spec, settings = job.spec, self._settings
        requests = self._runtime.requests_for(spec, edit.source, edit.mask, edit.encoding)
        resume = await self._checkpoints.latest(job.job_id) if job.attempt > 1 else None
        if resume is not None:
            log.info("job %s: attempt %d resumes at step %d", job.job_id, job.attempt, resume[0])
        return RenderJob(
            job_id=job.job_id,
            requests=requests,
            priority=job.priority,
            fairness_key=fairness_key,
            resume=resume[1] if resume else None,
            partial_images=spec.partial_images,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            preview_interval_s=settings.progress_interval_s,
        )

    async def _complete(
        self, job: JobRef, inp: RenderInput, results: list[RenderResult], edit: EditInputs
    ) -> RenderOutput:
        job_id = job.job_id
        account_id = inp.account_id or await self._account_of(job_id)
        images = await anyio.to_thread.run_sync(
            store_images, self._store.blobs, job_id, account_id, job.spec, results, edit
        )
        if not await self._rows.change(job_id, lambda c: c.complete(job_id, images)):
            return await self._current(job_id)
        await self._checkpoints.clear(job_id, written_elsewhere=job.attempt > 1)
        return RenderOutput(job_id, JobStatus.SUCCEEDED.value, [i.id for i in images])

    @activity.defn(name=FINALIZE_ACTIVITY)
    async def finalize(self, inp: FinalizeInput) -> FinalizeOutput:
        status = JobStatus(inp.status)
        job_id = inp.job_id
        changed = await self._rows.change(
            job_id, lambda c: c.finish(job_id, status, inp.reason, inp.error_code)
        )
        await self._checkpoints.clear(job_id, written_elsewhere=True)
        return FinalizeOutput(changed=changed)

    async def _account_of(self, job_id: str) -> str:
        job = await anyio.to_thread.run_sync(self._store.jobs.get, job_id)
        if job is None:
            raise ApplicationError(f"job {job_id} does not exist", type="JobNotFound")
        return job.account_id

    async def _current(self, job_id: str) -> RenderOutput:
        job = await anyio.to_thread.run_sync(self._store.jobs.get, job_id)
        status = job.status.value if job is not None else JobStatus.FAILED.value
        images = [i.id for i in job.images] if job is not None else []
        return RenderOutput(job_id, status, images)


@asynccontextmanager
async def render_activities(
    runtime: ModelRuntime, store: Store, settings: Settings, pool: PoolSettings
) -> AsyncIterator[RenderActivities]:
    """A worker process's render activities with what they share, running for the
    block: the engine (model, scheduler, loop), the batched job-row writer and the
    checkpoint store."""
    checkpoints = Checkpoints(store.blobs)
    scheduler = Scheduler(
        pool.batch_images or runtime.model.batch_images,
        preemption=pool.preemption,
        max_pauses=settings.max_preemptions,
        memory_budget=pool.paused_memory_mb * 2**20,
    )
    engine = Engine(
        runtime.model,
        scheduler,
        runtime.call,
        SwapStore(checkpoints.save, checkpoints.load),
    )
    rows = JobRows(store.jobs, settings.progress_interval_s, announce=announcer(settings))
    engine.start()
    rows.start()
    try:
        yield RenderActivities(runtime, store, settings, engine, rows, checkpoints)
    finally:
        await engine.stop()
        await rows.stop()
