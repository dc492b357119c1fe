"""Workflow helpers that need no server (the workflow itself runs in the integration
tests, inside Temporal's sandbox)."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from daguerre.engine.workflows import describe_failure


def test_describe_failure_names_whose_problem_it_is() -> None:
    def activity_error(cause: ApplicationError) -> ActivityError:
        err = ActivityError(
            "Activity task failed",
            scheduled_event_id=1,
            started_event_id=2,
            identity="w",
            activity_type="daguerre.render",
            activity_id="1",
            retry_state=RetryState.MAXIMUM_ATTEMPTS_REACHED,
        )
        err.__cause__ = cause
        return err

    reason, code = describe_failure(activity_error(ApplicationError("no", type="ModelInputError")))
    assert (reason, code) == ("no", "invalid_request")
    reason, code = describe_failure(activity_error(ApplicationError("boom", type="RuntimeError")))
    assert reason == "render failed after its retries: boom" and code == "render_failed"


def test_a_local_activity_failure_is_the_activity_error_itself() -> None:
    reason, code = describe_failure(ApplicationError("no", type="ModelInputError"))
    assert (reason, code) == ("no", "invalid_request")
    reason, code = describe_failure(ApplicationError("boom", type="RuntimeError"))
    assert reason == "render failed after its retries: boom" and code == "render_failed"
