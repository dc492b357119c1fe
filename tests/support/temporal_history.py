"""What a test reads of Temporal about its workers: which worker holds a job's workflow
task (a render runs inside it: renders are local activities), which one's render result
counted, how often the task timed out, and who polls a queue.

Workers are told apart by their Temporal identity, the SDK's default ``pid@hostname``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client


async def holder(client: Client, job_id: str) -> str | None:
    """Who holds the job's workflow task now (its render runs inside it): the identity
    of the worker that started the latest one."""
    identity = None
    async for event in client.get_workflow_handle(job_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            identity = event.workflow_task_started_event_attributes.identity
    return identity


async def render_results(client: Client, job_id: str) -> list[str]:
    """The identity of each worker whose render result was recorded in the job's
    history (a local activity's result is a marker the completing task writes): one
    entry per render that ran to completion and counted. Waits for the workflow to
    close first: the render marks the job row final a moment before that."""
    handle = client.get_workflow_handle(job_id)
    await asyncio.wait_for(handle.result(), timeout=60)
    completed_by = ""
    results = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            completed_by = event.workflow_task_completed_event_attributes.identity
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            results.append(completed_by)
    return results


async def pollers(client: Client, task_queue: str) -> dict[str, datetime]:
    """Who polls the queue for workflow tasks, and when each last did."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {p.identity: p.last_access_time.ToDatetime() for p in response.pollers}


async def task_timeouts(client: Client, job_id: str) -> int:
    """How many times in a row the job's workflow task timed out before one completed:
    the attempt of the last one scheduled, less one (repeated attempts are kept out of
    the history until one completes, but each counts in the next one's attempt)."""
    attempt = 1
    async for event in client.get_workflow_handle(job_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            attempt = max(attempt, event.workflow_task_scheduled_event_attributes.attempt)
    return attempt - 1
