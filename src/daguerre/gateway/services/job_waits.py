"""Waiting for a job to end, as a synchronous images request does.

The wait follows the job's row (the gateway's progress feed), and asks Temporal now and
then whether the job's workflow still runs: the one path that ends a workflow without
finalizing its row is an operator's terminate (or a timeout), and its waiters must
still be answered.
"""

from __future__ import annotations

import asyncio

from daguerre.domain import JobRecord
from daguerre.engine.client import EngineUnavailable
from daguerre.gateway.context import Services
from daguerre.gateway.services.reconciler import CLOSED_UNFINISHED
from daguerre.store.threads import run_blocking

# How often a long wait asks Temporal whether the job's workflow still runs.
CLOSED_CHECK_S = 30.0


async def wait_finished(services: Services, job_id: str) -> JobRecord | None:
    """The job once it is final, as its row says: the gateway's one progress poller
    follows every waiting job in one query per tick (progress/feed.py), so a waiter
    costs the service next to nothing. Every path through the workflow finalizes the
    row; the one exception, a workflow an operator terminated (or that timed out), is
    caught by asking Temporal every ``CLOSED_CHECK_S`` while the wait lasts."""
    waited = asyncio.create_task(services.feed.wait(job_id))
    try:
        while True:
            done, _ = await asyncio.wait({waited}, timeout=CLOSED_CHECK_S)
            if done:
                return waited.result()
            if await _closed_unfinished(services, job_id):
                return await waited
    finally:
        waited.cancel()
        await asyncio.gather(waited, return_exceptions=True)


async def _closed_unfinished(services: Services, job_id: str) -> bool:
    """Whether the job's workflow has closed with the job not final (and if so, fail
    the job, so that its waiters are answered)."""
    try:
        status = await services.workflows.status(job_id)
    except EngineUnavailable:
        return False  # Temporal cannot say now; the row may still finish
    if status is None or status == "RUNNING":
        return False
    jobs = services.store.jobs
    job = await run_blocking(jobs.get, job_id)
    if job is None or job.is_terminal:
        return False
    await run_blocking(jobs.fail, job_id, CLOSED_UNFINISHED)
    return True
