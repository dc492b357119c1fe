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
from daguerre.progress import announcer
from daguerre.store import Store
from daguerre.store.threads import run_blocking
from daguerre.workers.checkpoints import Checkpoints
from daguerre.workers.edits import EditInputs, load_edit_inputs
from daguerre.workers.engine import RenderJob, Update
from daguerre.workers.engine_client import Driver, Engine, ProcessDriver, Ticket
from daguerre.workers.job_rows import JobRows
from daguerre.workers.metrics import RenderWatch, WorkerMetrics
from daguerre.workers.progress import JobRef, Progress
from daguerre.workers.provenance import open_provenance
from daguerre.workers.render_tracing import RenderTrace, render_trace
from daguerre.workers.results import store_images
from daguerre.workers.runtime import requests_for

log = logging.getLogger(__name__)


class Heartbeat:
    """A render that is a regular activity (of a workflow started before renders were
    local) tells Temporal it is alive every ``interval_s`` at most, starting that long
    after it began. A local activity needs none: the worker heartbeats its workflow task.
    Resuming needs no heartbeat either: it reads the newest checkpoint."""

    def __init__(self, interval_s: float, local: bool) -> None:
        self.interval_s = interval_s
        self._local = local
        self._next = time.monotonic() + interval_s
        self.step = 0

    def beat(self, update: Update | None) -> None:
        if update is not None:
            self.step = update.step
        now = time.monotonic()
        if not self._local and now >= self._next:
            self._next = now + self.interval_s
            activity.heartbeat({"step": self.step})


async def _updates(ticket: Ticket, keepalive_s: float) -> AsyncIterator[Update | None]:
    """The ticket's updates, and None whenever none came for ``keepalive_s``."""
    while True:
        # The timeout covers the wait only, never the yield: a timer still armed while
        # the caller handles an update (a checkpoint written to a slow store) would fire
        # into the caller's own await and cancel the render.
        try:
            async with asyncio.timeout(keepalive_s):
                update: Update | None = await ticket.updates.get()
        except TimeoutError:
            update = None
        yield update


class RenderActivities:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        engine: Engine,
        rows: JobRows,
        checkpoints: Checkpoints,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._engine = engine
        self.engine = engine  # for the worker's health checks
        self.metrics = metrics or WorkerMetrics()
        self._rows = rows
        self._checkpoints = checkpoints
        self._progress = Progress(rows, store)
        self._provenance = open_provenance(settings)  # content credentials, or None
        assert engine.info is not None, "start the engine first"
        self.batch_images = engine.info.batch_images
        # A third of the timeout: two beats may be late before Temporal gives up on it.
        self._heartbeat_s = settings.heartbeat_timeout_s / 3

    @activity.defn(name=RENDER_ACTIVITY)
    async def render(self, inp: RenderInput) -> RenderOutput:
        if inp.spec.model != self._settings.model:
            raise ApplicationError(
                f"model {inp.spec.model!r} is not served by this pool "
                f"(its workers run {self._settings.model!r})",
                type="WrongModel",
            )
        info = activity.info()
        # From the workflow (a local activity's own info has none), else the activity's.
        priority = inp.priority or info.priority.priority_key or priorities.DEFAULT
        fairness_key = inp.fairness_key or info.priority.fairness_key or ""
        job = JobRef(inp.job_id, inp.spec, info.attempt, priority)
        if info.attempt > 1:
            # An earlier attempt may have finished the job (or its owner cancelled it).
            current = await self._current(inp.job_id)
            if JobStatus(current.status).is_terminal:
                return current
        try:
            with render_trace(job) as traced:  # below Temporal's RunActivity span
                return await self._render(job, inp, fairness_key, traced)
        except ModelInputError as err:
            raise ApplicationError(str(err), type="ModelInputError") from err

    async def _render(
        self, job: JobRef, inp: RenderInput, fairness_key: str, traced: RenderTrace
    ) -> RenderOutput:
        edit, resume = await run_blocking(self._inputs, job)
        request = self._request(job, edit, resume, fairness_key)
        request.trace_steps = traced.recording
        heartbeat = Heartbeat(self._heartbeat_s, activity.info().is_local)
        results: list[RenderResult] = []
        watch = RenderWatch(self.metrics, inp, job.attempt == 1 and request.resume is None)
        self._rows.track(job.job_id)
        try:
            async with self._engine.render(request) as ticket:
                async for update in _updates(ticket, self._heartbeat_s):
                    heartbeat.beat(update)
                    if update is None:
                        continue
                    watch.heard(update.kind)
                    traced.heard(update)
                    if update.checkpoint is not None:
                        await self._checkpoints.save(job.job_id, update.step, update.checkpoint)
                    if update.kind == "failed":
                        assert update.error is not None
                        raise update.error
                    if update.kind == "finished":
                        results = update.results or []
                        break
                    if update.kind == "stopped" or not await self._progress.publish(job, update):
                        return await self._current(job.job_id)  # cancelled meanwhile
        finally:
            self._rows.untrack(job.job_id)
        return await self._complete(job, inp, results, edit, resumed=request.resume is not None)

    def _inputs(self, job: JobRef) -> tuple[EditInputs, tuple[int, bytes] | None]:
        """An edit's images, and the job's newest checkpoint: one trip to the blob store.
        A local activity's attempt counts again from 1 when its workflow task moves to
        another worker (its first worker died), so a checkpoint is looked for every time
        (a listing of an empty folder, for a job that never had one)."""
        return load_edit_inputs(self._store.blobs, job.spec), self._checkpoints.latest(job.job_id)

    def _request(
        self,
        job: JobRef,
        edit: EditInputs,
        resume: tuple[int, bytes] | None,
        fairness_key: str,
    ) -> RenderJob:
        """What the engine needs, with the checkpoint to resume from."""
        spec, settings = job.spec, self._settings
        requests = requests_for(spec, edit.source, edit.mask, edit.encoding)
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
        self,
        job: JobRef,
        inp: RenderInput,
        results: list[RenderResult],
        edit: EditInputs,
        resumed: bool,
    ) -> RenderOutput:
        job_id = job.job_id
        # An attempt cut off from the cluster (a lost host) may finish after its job moved
        # and succeeded elsewhere: it must not overwrite the images clients already have.
        # One narrow query: the whole row only when it is needed (rarely).
        state = (await run_blocking(self._store.jobs.states, [job_id])).get(job_id)
        if state is None:
            raise ApplicationError(f"job {job_id} does not exist", type="JobNotFound")
        if JobStatus(state[0]).is_terminal:
            return await self._current(job_id)
        account_id = inp.account_id or await self._account_of(job_id)
        images = await run_blocking(
            store_images,
            self._store.blobs,
            job_id,
            account_id,
            job.spec,
            results,
            edit,
            self._provenance,
        )
        if not await self._rows.change(job_id, lambda c: c.complete(job_id, images)):
            return await self._current(job_id)
        await self._checkpoints.clear(job_id, written_elsewhere=resumed or job.attempt > 1)
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
        """The job's owner, for a render input without it (a workflow started before
        renders carried it)."""
        job = await run_blocking(self._store.jobs.get, job_id)
        if job is None:
            raise ApplicationError(f"job {job_id} does not exist", type="JobNotFound")
        return job.account_id

    async def _current(self, job_id: str) -> RenderOutput:
        job = await run_blocking(self._store.jobs.get, job_id)
        status = job.status.value if job is not None else JobStatus.FAILED.value
        images = [i.id for i in job.images] if job is not None else []
        return RenderOutput(job_id, status, images)


@asynccontextmanager
async def render_activities(
    store: Store,
    settings: Settings,
    pool: PoolSettings,
    driver: Driver | None = None,
    metrics: WorkerMetrics | None = None,
) -> AsyncIterator[RenderActivities]:
    """A worker process's render activities with what they share, running for the
    block: the engine (its core in a process of its own, unless ``driver`` says
    otherwise, its stats going to ``metrics``), the batched job-row writer and the
    checkpoint store."""
    metrics = metrics or WorkerMetrics()
    engine = Engine(driver or ProcessDriver(settings, pool), on_stats=metrics.engine_stats)
    await engine.start()
    announce = announcer(settings)
    rows = JobRows(
        store.jobs,
        settings.progress_interval_s,
        announce=announce,
        listen=engine.flags,
    )
    rows.start()
    try:
        yield RenderActivities(store, settings, engine, rows, Checkpoints(store.blobs), metrics)
    finally:
        await rows.stop()
        announce.close()
        await engine.stop()
