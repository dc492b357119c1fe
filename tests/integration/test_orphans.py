"""Orphan jobs on a real Temporal: a row whose gateway died before starting its workflow
is started by the reconciler and renders; one whose workflow an operator terminated is
failed with a reason; and sweeping again starts nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from temporalio.client import Client

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.config import Settings
from daguerre.domain import JobSpec, JobStatus
from daguerre.engine.client import TemporalWorkflowClient
from daguerre.gateway.access.controls import LiveControls
from daguerre.gateway.services.reconciler import Reconciler
from daguerre.store import Store, open_store
from daguerre.store.tables import JobRow, utcnow
from daguerre.workers.worker import pool_workers
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_terminal, workflow_status
from tests.support.stack import StackConfig

SPEC = JobSpec(prompt="orphan", model="fake", width=64, height=64, steps=3)


@dataclass
class Setup:
    settings: Settings
    store: Store
    engine: TemporalWorkflowClient
    reconciler: Reconciler
    account_id: str

    def orphan(self, job_id: str, pool: str = "api") -> None:
        """A row recorded two minutes ago by a gateway that died before starting it."""
        self.store.jobs.create(job_id, self.account_id, pool, SPEC, tier="free", priority=3)
        with self.store.db.begin() as conn:
            conn.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(created_at=utcnow() - timedelta(minutes=2))
            )


@pytest.fixture
async def setup(
    tmp_path: Path, temporal_address: str, temporal_client: Client
) -> AsyncIterator[Setup]:
    config = StackConfig(tmp_path, unique_tag(), temporal_address, step_delay_s=0.02)
    settings = config.settings()
    store = open_store(settings)
    account = store.accounts.create_account("a", "free", "api")
    engine = TemporalWorkflowClient(settings, temporal_client)
    controls = LiveControls(settings, store.controls)
    async with pool_workers(settings, "api", temporal_client):
        yield Setup(
            settings, store, engine, Reconciler(settings, store, engine, controls), account.id
        )
    store.close()


async def test_an_orphan_is_started_once_and_renders(setup: Setup, temporal_client: Client) -> None:
    job_id = f"orphan-{unique_tag()}"
    setup.orphan(job_id)
    assert await setup.engine.status(job_id) is None  # no workflow: an orphan
    swept = await setup.reconciler.sweep()
    assert swept.started == 1
    job = await wait_terminal(setup.store, job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    # Another gateway's sweep (its own memory) finds the job done and starts nothing.
    other = Reconciler(
        setup.settings,
        setup.store,
        setup.engine,
        LiveControls(setup.settings, setup.store.controls),
    )
    assert (await other.sweep()).checked == 0
    count = await temporal_client.count_workflows(f"WorkflowId = '{job_id}'")
    assert count.count <= 1


async def test_a_terminated_workflow_leaves_no_waiting_row(
    setup: Setup, temporal_client: Client
) -> None:
    job_id = f"terminated-{unique_tag()}"
    # In the chat pool, which no worker here serves: it waits until it is terminated.
    setup.orphan(job_id, pool="chat")
    await setup.engine.submit(job_id, SPEC, "chat", 3, setup.account_id)
    await temporal_client.get_workflow_handle(job_id).terminate("an operator's call")
    assert await workflow_status(setup.engine, job_id, "TERMINATED") == "TERMINATED"
    assert (await setup.reconciler.sweep()).failed == 1
    job = setup.store.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error is not None and "workflow ended" in job.error
