"""Waiting on job rows from async tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

from daguerre.domain import JobRecord
from daguerre.engine.client import WorkflowClient
from daguerre.store import Store


async def wait_job(
    store: Store,
    job_id: str,
    predicate: Callable[[JobRecord], bool],
    timeout_s: float = 60.0,
    what: str = "the expected state",
) -> JobRecord:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    job = None
    while loop.time() < deadline:
        job = await anyio.to_thread.run_sync(store.jobs.get, job_id)
        if job is not None and predicate(job):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {what} in {timeout_s} s; last: {job}")


async def wait_terminal(store: Store, job_id: str, timeout_s: float = 60.0) -> JobRecord:
    return await wait_job(store, job_id, lambda j: j.is_terminal, timeout_s, "a final status")


async def workflow_status(engine: WorkflowClient, job_id: str, expected: str) -> str | None:
    """The workflow's status once it is ``expected`` (or the last seen, after ~5 s): the
    job row is final a moment before the workflow itself closes."""
    status = None
    for _ in range(100):
        status = await engine.status(job_id)
        if status == expected:
            break
        await asyncio.sleep(0.05)
    return status
