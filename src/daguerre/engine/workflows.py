"""The GenerateImage workflow: one per job, with workflow id = job id.

It runs the render (which keeps the job row up to date itself) and only steps in when
the render gives up or the job is cancelled. High-priority jobs run on
their pool's express queue (chosen by the submitter: see daguerre/priority.py).
Deterministic: no I/O, clock or randomness here, and nothing heavy imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from daguerre.domain import ErrorCode, JobStatus
    from daguerre.engine.contracts import (
        FINALIZE_ACTIVITY,
        NON_RETRYABLE_ERRORS,
        NOTIFY_ACTIVITY,
        RENDER_ACTIVITY,
        WORKFLOW,
        WORKFLOW_WITH_ACTIVITY,
        FinalizeInput,
        FinalizeOutput,
        GenerateImageInput,
        GenerateImageOutput,
        NotifyInput,
        NotifyOutput,
        RenderInput,
        RenderOutput,
        RenderPolicy,
    )
    from daguerre.priority import control_queue, webhook_queue


def describe_failure(error: FailureError) -> tuple[str, ErrorCode]:
    """A sentence for the job's error field, and whose problem it is. A regular activity's
    failure arrives as an ActivityError around the activity's error; a local activity's
    arrives as the activity's error itself."""
    cause = error.cause if isinstance(error, ActivityError) else error
    detail = cause.message if isinstance(cause, FailureError) and cause.message else str(error)
    if isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_ERRORS:
        return detail, ErrorCode.INVALID_REQUEST
    return f"render failed after its retries: {detail}", ErrorCode.RENDER_FAILED


@workflow.defn(name=WORKFLOW)
class GenerateImage:
    """A job whose render is a local activity: it runs in the worker that took the
    workflow task, whose engine batches it with every other render there. Against a
    regular activity that saves Temporal four of its seven calls a job and three of its
    eleven history events (docs/performance.md). The workflow task stays open meanwhile
    and the worker heartbeats it; if the worker dies, the task times out (``task_timeout``,
    set by the submitter) and another worker replays the workflow and runs the render
    again, from the job's newest checkpoint."""

    @workflow.run
    async def run(self, inp: GenerateImageInput) -> GenerateImageOutput:
        policy = inp.policy
        return await _generate(
            inp,
            workflow.execute_local_activity(
                RENDER_ACTIVITY,
                _render_input(inp),
                result_type=RenderOutput,
                start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_s),
                retry_policy=_retry(policy),
            ),
        )


@workflow.defn(name=WORKFLOW_WITH_ACTIVITY)
class GenerateImageWithActivity:
    """Jobs started before renders were local activities: their workflows replay with
    the regular render activity they scheduled. New jobs never start this one; it goes
    once none of its workflows is left open."""

    @workflow.run
    async def run(self, inp: GenerateImageInput) -> GenerateImageOutput:
        policy = inp.policy
        return await _generate(
            inp,
            workflow.execute_activity(
                RENDER_ACTIVITY,
                _render_input(inp),
                result_type=RenderOutput,
                start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_s),
                retry_policy=_retry(policy),
            ),
        )


async def _generate(
    inp: GenerateImageInput, render: Awaitable[RenderOutput]
) -> GenerateImageOutput:
    """Render; step in only when the render gives up or the job is cancelled."""
    try:
        out = await render
    except (FailureError, asyncio.CancelledError) as err:
        if is_cancelled_exception(err):
            # The render stops within a second of its row saying cancelled (the gateway
            # writes that at once); marking the job here covers one that never started,
            # or whose worker is gone.
            await _finalize(inp, JobStatus.CANCELLED, "cancelled by its owner", ErrorCode.CANCELLED)
            raise
        assert isinstance(err, FailureError)
        reason, code = describe_failure(err)
        await _finalize(inp, JobStatus.FAILED, reason, code)
        await _notify(inp)
        raise ApplicationError(reason, type="RenderFailed", non_retryable=True) from err
    await _notify(inp)
    return GenerateImageOutput(job_id=inp.job_id, status=out.status, image_ids=out.image_ids)


def _render_input(inp: GenerateImageInput) -> RenderInput:
    # The workflow's priority travels with the render: a local activity's own info has
    # none, and the worker's scheduler orders renders by it.
    info = workflow.info()
    priority = info.priority
    return RenderInput(
        job_id=inp.job_id,
        spec=inp.spec,
        account_id=inp.account_id,
        priority=priority.priority_key,
        fairness_key=priority.fairness_key,
        queued_at=info.workflow_start_time.timestamp(),
        tier=inp.tier,
    )


def _retry(policy: RenderPolicy) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_interval_s),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=policy.max_attempts,
        non_retryable_error_types=NON_RETRYABLE_ERRORS,
    )


def _control_queue(inp: GenerateImageInput) -> str:
    return inp.control_queue or control_queue(workflow.info().task_queue)


# Workflows that scheduled their notify before deliveries had a queue of their own
# replay it on the control queue.
NOTIFY_QUEUE_PATCH = "notify-on-webhook-queue"


async def _notify(inp: GenerateImageInput) -> None:
    """Call the job's webhook; a receiver that never answers does not fail the job.

    Deliveries run on the pool's webhook queue, on worker slots of their own: a hung
    receiver never holds a slot that another job's bookkeeping needs. The worker backs
    off per destination (its failures decide the wait, through the error's
    next_retry_delay) and fails a refused destination for good (non-retryable)."""
    if not inp.webhook:
        return
    control = _control_queue(inp)
    queue = webhook_queue(control) if workflow.patched(NOTIFY_QUEUE_PATCH) else control
    try:
        await workflow.execute_activity(
            NOTIFY_ACTIVITY,
            NotifyInput(job_id=inp.job_id),
            result_type=NotifyOutput,
            start_to_close_timeout=timedelta(seconds=30),
            # All tries together; also ends the wait if no worker serves the queue.
            schedule_to_close_timeout=timedelta(hours=1),
            task_queue=queue,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=60), maximum_attempts=8),
        )
    except ActivityError:
        workflow.logger.warning("the webhook of job %s was not delivered", inp.job_id)


async def _finalize(
    inp: GenerateImageInput, status: JobStatus, reason: str, code: ErrorCode
) -> None:
    await workflow.execute_activity(
        FINALIZE_ACTIVITY,
        FinalizeInput(job_id=inp.job_id, status=status.value, reason=reason, error_code=code),
        result_type=FinalizeOutput,
        start_to_close_timeout=timedelta(seconds=30),
        task_queue=_control_queue(inp),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
    )
