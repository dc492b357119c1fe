"""A worker killed with kill -9 mid-render: the job still completes once a worker is
back, and the new attempt resumes from the last checkpoint rather than step 0."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from daguerre.domain import JobSpec, JobStatus
from daguerre.engine.client import TemporalWorkflowClient
from daguerre.procs import cmdline
from daguerre.store import Store, open_store
from daguerre.workers.checkpoints import Checkpoints
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_job, wait_terminal
from tests.support.stack import StackConfig, start_worker


def crash_config(
    tmp_path: Path, temporal_address: str, pool: dict[str, object] | None = None
) -> StackConfig:
    """Frequent checkpoints and a quick takeover, so that a kill is survived soon."""
    return StackConfig(
        tmp_path,
        unique_tag(),
        temporal_address,
        values={
            "checkpoint_interval_s": 0.2,
            # The render is a local activity: its workflow task goes to another worker
            # this long after the first one died.
            "heartbeat_timeout_s": 1.0,
            "retry_initial_interval_s": 0.2,
        },
        step_delay_s=0.1,
        pool=pool or {},
    )


async def test_kill_9_worker_mid_render_resumes_from_checkpoint(
    tmp_path: Path, temporal_address: str
) -> None:
    config = crash_config(tmp_path, temporal_address)
    settings = config.settings()
    store = open_store(settings)
    engine = TemporalWorkflowClient(settings)
    account = store.accounts.create_account("a", "free", "api")
    spec = JobSpec(prompt="survive a crash", model="fake", n=1, width=64, height=64, steps=40)
    store.jobs.create("crash-job", account.id, "api", spec)
    await engine.submit("crash-job", spec, "api", 3, account.id)

    first = start_worker(config, "api", tmp_path, "worker-1")
    second = None
    try:
        running = await wait_job(store, "crash-job", lambda j: j.step >= 15, what="step 15")
        assert running.status is JobStatus.RUNNING
        first.kill9()
        killed_at = (await wait_job(store, "crash-job", lambda j: True)).step
        second = start_worker(config, "api", tmp_path, "worker-2")
        job = await wait_terminal(store, "crash-job", timeout_s=60)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.attempts >= 2
    assert job.resumed_from_step is not None and 0 < job.resumed_from_step <= killed_at
    assert len(job.images) == 1 and store.blobs.exists(job.images[0].blob_key)
    store.close()


def newest_checkpoint(store: Store, job_id: str) -> int:
    newest = Checkpoints(store.blobs).latest(job_id)
    assert newest is not None, f"job {job_id} has no checkpoint"
    return newest[0]


async def test_kill_9_worker_with_a_full_batch_resumes_every_job_from_a_checkpoint(
    tmp_path: Path, temporal_address: str
) -> None:
    """Six renders share every step of one worker (its whole batch budget) when it is
    killed: each is taken over by the next worker from its own newest checkpoint."""
    config = crash_config(tmp_path, temporal_address, pool={"batch_images": 6})
    settings = config.settings()
    store = open_store(settings)
    engine = TemporalWorkflowClient(settings)
    account = store.accounts.create_account("a", "free", "api")
    ids = [f"batch-{i}" for i in range(6)]
    for job_id in ids:
        spec = JobSpec(prompt=job_id, model="fake", n=1, width=64, height=64, steps=60)
        store.jobs.create(job_id, account.id, "api", spec)
        await engine.submit(job_id, spec, "api", 3, account.id)

    first = start_worker(config, "api", tmp_path, "worker-1")
    second = None
    try:
        for job_id in ids:  # all six under way together, each past a checkpoint
            await wait_job(store, job_id, lambda j: j.step >= 10, what="step 10")
        first.kill9()
        # What each render had saved when its worker died (its row may lag a little).
        saved = {job_id: newest_checkpoint(store, job_id) for job_id in ids}
        second = start_worker(config, "api", tmp_path, "worker-2")
        jobs = [await wait_terminal(store, job_id, timeout_s=90) for job_id in ids]
    finally:
        first.stop()
        if second is not None:
            second.stop()
    for job in jobs:
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.attempts >= 2, job
        # ... from its newest checkpoint, not from step 0.
        assert job.resumed_from_step is not None and job.resumed_from_step > 0
        assert job.resumed_from_step == saved[job.id]
        assert len(job.images) == 1 and store.blobs.exists(job.images[0].blob_key)
        assert Checkpoints(store.blobs).latest(job.id) is None  # cleaned up
    store.close()


def engine_process_of(worker_pid: int) -> int:
    """The worker's engine process (its child running daguerre.workers.engine_main)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == worker_pid and "daguerre.workers.engine_main" in cmdline(int(entry.name)):
            return int(entry.name)
    raise AssertionError(f"worker {worker_pid} has no engine process")


async def test_a_dead_engine_process_is_replaced_and_its_renders_finish(
    tmp_path: Path, temporal_address: str
) -> None:
    config = StackConfig(
        tmp_path,
        unique_tag(),
        temporal_address,
        values={"checkpoint_interval_s": 0.2, "retry_initial_interval_s": 0.2},
        step_delay_s=0.1,
    )
    settings = config.settings()
    store = open_store(settings)
    engine = TemporalWorkflowClient(settings)
    account = store.accounts.create_account("a", "free", "api")
    ids = [f"engine-{i}" for i in range(3)]
    for job_id in ids:
        spec = JobSpec(prompt=job_id, model="fake", n=1, width=64, height=64, steps=40)
        store.jobs.create(job_id, account.id, "api", spec)
        await engine.submit(job_id, spec, "api", 3, account.id)
    worker = start_worker(config, "api", tmp_path)
    try:
        for job_id in ids:
            await wait_job(store, job_id, lambda j: j.step >= 8, what="step 8")
        first_engine = engine_process_of(worker.pid)
        os.kill(first_engine, signal.SIGKILL)
        jobs = [await wait_terminal(store, job_id, timeout_s=60) for job_id in ids]
        assert worker.popen.poll() is None  # the worker itself lived on ...
        assert engine_process_of(worker.pid) != first_engine  # ... with a new engine
    finally:
        worker.stop()
    for job in jobs:
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.attempts >= 2 and job.resumed_from_step is not None
        assert job.resumed_from_step > 0  # from its checkpoint
    store.close()
