"""The GenerateImage workflow's failure and cancel paths, with an in-process worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.config import Settings
from daguerre.domain import ErrorCode, JobSpec, JobStatus
from daguerre.engine.client import TemporalWorkflowClient
from daguerre.store import Store, open_store
from daguerre.workers.worker import pool_workers
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_job, wait_terminal, workflow_status
from tests.support.stack import StackConfig


@dataclass
class Engine:
    settings: Settings
    store: Store
    engine: TemporalWorkflowClient
    account_id: str

    async def submit(self, job_id: str, prompt: str, steps: int = 4) -> None:
        spec = JobSpec(prompt=prompt, model="fake", width=64, height=64, steps=steps)
        self.store.jobs.create(job_id, self.account_id, "api", spec)
        await self.engine.submit(job_id, spec, "api", 3, self.account_id)


@pytest.fixture
async def engine(
    tmp_path: Path, temporal_address: str, temporal_client: Client
) -> AsyncIterator[Engine]:
    config = StackConfig(
        tmp_path,
        unique_tag(),
        temporal_address,
        values={
            "render_max_attempts": 2,
            "retry_initial_interval_s": 0.1,
            # Production workers import workflow code once ("fast"); here the strict
            # sandbox checks that GenerateImage stays deterministic on every path.
            "workflow_sandbox": "strict",
        },
        step_delay_s=0.05,
    )
    settings = config.settings()
    store = open_store(settings)
    account = store.accounts.create_account("a", "free", "api")
    # The engine's core runs in a process of its own, as in a real worker.
    async with pool_workers(settings, "api", temporal_client):
        yield Engine(settings, store, TemporalWorkflowClient(settings, temporal_client), account.id)
    store.close()


async def test_success(engine: Engine) -> None:
    await engine.submit("wf-ok", "fine")
    job = await wait_terminal(engine.store, "wf-ok")
    assert job.status is JobStatus.SUCCEEDED and job.step == 4
    assert await workflow_status(engine.engine, "wf-ok", "COMPLETED") == "COMPLETED"


async def test_input_the_model_refuses_fails_at_once_with_its_reason(engine: Engine) -> None:
    await engine.submit("wf-bad", "fail:input")
    job = await wait_terminal(engine.store, "wf-bad")
    assert job.status is JobStatus.FAILED
    assert job.error == "the fake model refuses this prompt"
    assert job.error_code == ErrorCode.INVALID_REQUEST
    assert await workflow_status(engine.engine, "wf-bad", "FAILED") == "FAILED"


async def test_a_render_that_keeps_crashing_fails_after_its_retries(engine: Engine) -> None:
    await engine.submit("wf-crash", "fail:crash")
    job = await wait_terminal(engine.store, "wf-crash")
    assert job.status is JobStatus.FAILED
    assert job.error is not None and "after its retries" in job.error
    assert "the fake model crashed" in job.error
    assert job.error_code == ErrorCode.RENDER_FAILED
    assert job.attempts == 2


async def test_a_cancelled_job_stops_rendering(engine: Engine) -> None:
    await engine.submit("wf-long", "long", steps=1000)  # 50 s if nothing stopped it
    await wait_job(engine.store, "wf-long", lambda j: j.step >= 2, what="step 2")
    # What the gateway does: ask Temporal to cancel, and mark the row at once.
    await engine.engine.cancel("wf-long")
    engine.store.jobs.finish("wf-long", JobStatus.CANCELLED, "cancelled by its owner", "cancelled")
    # The render notices the row within about a second and stops: the workflow closes.
    closed = None
    for _ in range(150):
        closed = await engine.engine.status("wf-long")
        if closed not in (None, "RUNNING"):
            break
        await asyncio.sleep(0.1)
    assert closed in ("COMPLETED", "CANCELED"), closed
    job = await wait_terminal(engine.store, "wf-long")
    assert job.status is JobStatus.CANCELLED and job.step < 1000
