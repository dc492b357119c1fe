"""A worker killed with kill -9 mid-render: the job still completes once a worker is
back, and the new attempt resumes from the last checkpoint rather than step 0."""

from __future__ import annotations

from pathlib import Path

from daguerre.domain import JobSpec, JobStatus
from daguerre.engine.client import TemporalEngine
from daguerre.store import open_store
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_job, wait_terminal
from tests.support.stack import StackConfig, start_worker


async def test_kill_9_worker_mid_render_resumes_from_checkpoint(
    tmp_path: Path, temporal_address: str
) -> None:
    config = StackConfig(
        tmp_path,
        unique_tag(),
        temporal_address,
        values={
            "checkpoint_interval_s": 0.2,
            # Short, so the retry starts soon after the kill.
            "heartbeat_timeout_s": 1.0,
            "retry_initial_interval_s": 0.2,
        },
        step_delay_s=0.1,
    )
    settings = config.settings()
    store = open_store(settings)
    engine = TemporalEngine(settings)
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
