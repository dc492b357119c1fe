"""The two workflow sandboxes: "strict" (the tests' choice for GenerateImage) refuses
non-deterministic calls in workflow code; "fast" (production's) imports workflow modules
once and no longer sees such a call. That difference is why the workflow's own tests run
it under "strict" (see test_workflow.py)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError

from daguerre.workers.worker import WORKFLOW_RUNNERS
from tests.integration.conftest import unique_tag
from tests.support.clock_workflow import ReadsTheWallClock


async def run_in(sandbox: str, client: Client) -> str:
    queue = unique_tag()
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ReadsTheWallClock],
        workflow_runner=WORKFLOW_RUNNERS[sandbox],
        # Fail the workflow (instead of retrying its task forever) so the test sees it.
        workflow_failure_exception_types=[RestrictedWorkflowAccessError],
    ):
        result: str = await client.execute_workflow(
            ReadsTheWallClock.run,
            id=f"clock-{secrets.token_hex(4)}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )
        return result


async def test_the_strict_sandbox_refuses_the_wall_clock(temporal_client: Client) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await run_in("strict", temporal_client)
    assert "datetime.datetime.now" in str(failed.value.cause)


async def test_the_fast_sandbox_does_not_see_it(temporal_client: Client) -> None:
    assert datetime.fromisoformat(await run_in("fast", temporal_client))
