"""Names and typed inputs/outputs of the workflow and its activities.

The workflow refers to activities by name, so this module (not the worker code that
implements them) is all the workflow and the gateway need to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daguerre.domain import JobSpec

WORKFLOW = "GenerateImage"
RENDER_ACTIVITY = "daguerre.render"
FINALIZE_ACTIVITY = "daguerre.finalize"
NOTIFY_ACTIVITY = "daguerre.notify"

# ApplicationError types a retry cannot fix: the workflow fails the job at once.
NON_RETRYABLE_ERRORS = ["ModelInputError", "JobNotFound", "WrongModel"]


def control_queue(task_queue: str) -> str:
    """Where a pool's bookkeeping activities run, so that marking a job failed or
    cancelled never waits behind that pool's render backlog."""
    return f"{task_queue}-control"


@dataclass(frozen=True)
class RenderPolicy:
    """Timeouts and retries for the render activity, chosen by the submitter's settings
    (a workflow cannot read settings: it must be deterministic)."""

    heartbeat_timeout_s: float = 10.0
    attempt_timeout_s: float = 1800.0
    max_attempts: int = 5
    initial_interval_s: float = 1.0
    # How many times a render may hand its slot to higher-priority work (preemption, see
    # workers/preemption.py); after that it keeps its slot, so it always finishes.
    max_preemptions: int = 10


@dataclass(frozen=True)
class GenerateImageInput:
    job_id: str
    spec: JobSpec
    policy: RenderPolicy = field(default_factory=RenderPolicy)
    # The job has a webhook: call the notify activity once it is final.
    webhook: bool = False


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
    # Where an earlier render activity of this job stopped when it yielded its slot. A
    # retry of the same activity resumes from its own heartbeat instead (newer).
    resume_step: int = 0
    resume_checkpoint: str | None = None
    # Whether this render may be asked to yield its slot to higher-priority work.
    preemptible: bool = True


@dataclass(frozen=True)
class RenderOutput:
    job_id: str
    status: str  # the job's status when the activity ended
    image_ids: list[str] = field(default_factory=list)
    # Set when the render yielded its slot: the step it stopped at and its checkpoint.
    # The workflow then schedules the render again from there.
    yielded_at_step: int | None = None
    checkpoint: str | None = None


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
