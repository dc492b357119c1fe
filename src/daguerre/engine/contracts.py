"""Names and typed inputs/outputs of the workflow and its activities.

The workflow refers to activities by name, so this module (not the worker code that
implements them) is all the workflow and the gateway need to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daguerre.domain import JobSpec

# The job workflow, whose render is a local activity; and its predecessor, whose render
# was a regular activity (workflows started before the change replay with it).
WORKFLOW = "GenerateImage.v2"
WORKFLOW_WITH_ACTIVITY = "GenerateImage"
RENDER_ACTIVITY = "daguerre.render"
FINALIZE_ACTIVITY = "daguerre.finalize"
NOTIFY_ACTIVITY = "daguerre.notify"

# ApplicationError types a retry cannot fix: the workflow fails the job at once.
NON_RETRYABLE_ERRORS = ["ModelInputError", "JobNotFound", "WrongModel"]


@dataclass(frozen=True)
class RenderPolicy:
    """Timeouts and retries for the render activity, chosen by the submitter's settings
    (a workflow cannot read settings: it must be deterministic)."""

    heartbeat_timeout_s: float = 10.0
    attempt_timeout_s: float = 1800.0
    max_attempts: int = 5
    initial_interval_s: float = 1.0


@dataclass(frozen=True)
class GenerateImageInput:
    job_id: str
    spec: JobSpec
    policy: RenderPolicy = field(default_factory=RenderPolicy)
    # The job has a webhook: call the notify activity once it is final.
    webhook: bool = False
    # Where its bookkeeping activities run: its pool's control queue. None (workflows
    # started before this field): derived from the workflow's own task queue.
    control_queue: str | None = None
    # The account that owns the job (its images are recorded as the account's). None
    # (workflows started before this field): the render reads it from the job row.
    account_id: str | None = None
    # The owner's tier when the job was accepted: a label of the worker's wait and render
    # metrics. None: a workflow started before this field (labelled "unknown").
    tier: str | None = None


@dataclass(frozen=True)
class GenerateImageOutput:
    job_id: str
    status: str
    image_ids: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class RenderInput:
    job_id: str
    spec: JobSpec
    account_id: str | None = None
    # The workflow's priority key and fairness key (its account): a local activity's own
    # info does not carry them, and the worker's scheduler orders renders by them.
    priority: int | None = None
    fairness_key: str | None = None
    # When the job's workflow started (its admission), in Unix seconds: the worker's
    # queue-lag metric measures from it to the render's start.
    queued_at: float | None = None
    tier: str | None = None  # see GenerateImageInput.tier


@dataclass(frozen=True)
class RenderOutput:
    job_id: str
    status: str  # the job's status when the activity ended
    image_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FinalizeInput:
    """Move a job to a terminal status (unless it already has one), with a reason."""

    job_id: str
    status: str
    reason: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class FinalizeOutput:
    changed: bool


@dataclass(frozen=True)
class NotifyInput:
    """Tell the job's webhook (if it has one) that the job is final."""

    job_id: str


@dataclass(frozen=True)
class NotifyOutput:
    delivered: bool
