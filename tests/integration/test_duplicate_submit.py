"""Submitting one job id twice (at once, and again after it finished) makes one job
and one workflow."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.client import Client

from daguerre.gateway.services.job_ids import new_job_id
from tests.integration.conftest import Stack
from tests.integration.helpers import wait_terminal


async def count_workflows(client: Client, workflow_id: str, at_least: int = 1) -> int:
    # Visibility is eventually consistent: give it a moment to list the first one.
    count = 0
    for _ in range(50):
        count = (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count
        if count >= at_least:
            break
        await asyncio.sleep(0.1)
    return count


async def test_duplicate_submit_is_one_job_and_one_workflow(
    stack: Stack, temporal_client: Client
) -> None:
    key = stack.new_key()
    headers = {"Authorization": f"Bearer {key}"}
    body = {"id": "dup-job-1", "prompt": "twice", "model": stack.model, "size": "64x64"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30) as http:
        responses = await asyncio.gather(*(http.post("/v1/jobs", json=body) for _ in range(4)))
        assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
        assert {r.json()["id"] for r in responses} == {"dup-job-1"}
        # The row (and workflow) id is derived from the account and the client's id.
        account = stack.store.accounts.authenticate(key)
        assert account is not None
        row_id = new_job_id(account, "dup-job-1", None)
        job = await wait_terminal(stack.store, row_id)
        again = await http.post("/v1/jobs", json=body)
        assert again.status_code == 202 and again.json()["status"] == "succeeded"
    assert job.attempts == 1
    assert await count_workflows(temporal_client, row_id) == 1
    # and the workflow ran once: one render attempt, one set of images
    assert len(job.images) == 1
