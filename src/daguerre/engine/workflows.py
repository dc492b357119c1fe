"""The GenerateImage workflow: one per job, with workflow id = job id.

It schedules a render activity (which keeps the job row up to date itself) and only
steps in when that activity gives up or the job is cancelled. High-priority jobs run on
their pool's express queue (chosen by the submitter: see daguerre/priority.py).
Deterministic: no I/O, clock or randomness here, and nothing heavy imported.
"""

from __future__ import annotations

import asyncio
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
        FinalizeInput,
        FinalizeOutput,
        GenerateImageInput,
        GenerateImageOutput,
        NotifyInput,
        NotifyOutput,
        RenderInput,
        RenderOutput,
    )
    from daguerre.priority import control_queue


def describe_failure(error: ActivityError) -> tuple[str, ErrorCode]:
    """A sentence for the job's error field, and whose problem it is."""
    cause = error.cause
    detail = cause.message if isinstance(cause, FailureError) and cause.message else str(error)
    if isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_ERRORS:
        return detail, ErrorCode.INVALID_REQUEST
    return f"render failed after its retries: {detail}", ErrorCode.RENDER_FAILED


@workflow.defn(name=WORKFLOW)
class GenerateImage:
    @workflow.run
    async def run(self, inp: GenerateImageInput) -> GenerateImageOutput:
        policy = inp.policy
        try:
            out = await workflow.execute_activity(
                RENDER_ACTIVITY,
                RenderInput(job_id=inp.job_id, spec=inp.spec, account_id=inp.account_id),
                result_type=RenderOutput,
                start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=policy.initial_interval_s),
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=policy.max_attempts,
                    non_retryable_error_types=NON_RETRYABLE_ERRORS,
                ),
            )
        except (ActivityError, asyncio.CancelledError) as err:
            if is_cancelled_exception(err):
                # A cancel reaches the render activity at its next heartbeat; marking the
                # job here covers one that never started, or whose worker is gone.
                await self._finalize(
                    inp, JobStatus.CANCELLED, "cancelled by its owner", ErrorCode.CANCELLED
                )
                raise
            assert isinstance(err, ActivityError)
            reason, code = describe_failure(err)
            await self._finalize(inp, JobStatus.FAILED, reason, code)
            await self._notify(inp)
            raise ApplicationError(reason, type="RenderFailed", non_retryable=True) from err
        await self._notify(inp)
        return GenerateImageOutput(job_id=inp.job_id, status=out.status, image_ids=out.image_ids)

    @staticmethod
    def _control_queue(inp: GenerateImageInput) -> str:
        return inp.control_queue or control_queue(workflow.info().task_queue)

    async def _notify(self, inp: GenerateImageInput) -> None:
        """Call the job's webhook; a receiver that never answers does not fail the job."""
        if not inp.webhook:
            return
        try:
            await workflow.execute_activity(
                NOTIFY_ACTIVITY,
                NotifyInput(job_id=inp.job_id),
                result_type=NotifyOutput,
                start_to_close_timeout=timedelta(seconds=30),
                task_queue=self._control_queue(inp),
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=60), maximum_attempts=8
                ),
            )
        except ActivityError:
            workflow.logger.warning("the webhook of job %s was not delivered", inp.job_id)

    async def _finalize(
        self, inp: GenerateImageInput, status: JobStatus, reason: str, code: ErrorCode
    ) -> None:
        await workflow.execute_activity(
            FINALIZE_ACTIVITY,
            FinalizeInput(job_id=inp.job_id, status=status.value, reason=reason, error_code=code),
            result_type=FinalizeOutput,
            start_to_close_timeout=timedelta(seconds=30),
            task_queue=self._control_queue(inp),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )
