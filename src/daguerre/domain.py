"""Typed records shared by the gateway, the engine, the workers and the store.

Plain dataclasses and string enums: Temporal's default converter carries them in
workflow histories as JSON, and the database stores the enums as text, so adding a
value (such as ``deferred``) needs no migration. Tiers are not an enum here: they are
configuration (``daguerre/tiers.toml``, see ``daguerre.access``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    # Accepted past its tier's wait budget: it runs after all queued work (see admission).
    DEFERRED = "deferred"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


# Once a job reaches one of these it never changes again ("terminal is sticky"), which is
# what makes concurrent writers (a retried activity, a cancel, a failure path) safe.
TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# Recorded but not started (or paused and waiting again): what the backlog, a queue
# position and the orphan sweep count, and the only statuses a job is created in.
WAITING_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.DEFERRED})


class ErrorCode(StrEnum):
    """Why a job did not succeed; the gateway maps these to HTTP statuses."""

    INVALID_REQUEST = "invalid_request"  # the model refused the input: the client's to fix
    RENDER_FAILED = "render_failed"  # every attempt failed: ours to fix
    CANCELLED = "cancelled"


class OutputFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"

    @property
    def media_type(self) -> str:
        return f"image/{self.value}"


# OpenAI's quality values, and the level each resolves to (dall-e-3's standard and hd
# included); none or ``auto`` is medium. Each backend gives the levels its own meaning
# (models/base.py RenderRequest.quality), and responses echo the resolved level.
QUALITY_LEVELS = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "standard": "medium",
    "hd": "high",
}


def resolved_quality(quality: str | None) -> str:
    return QUALITY_LEVELS.get(quality or "auto", "medium")


@dataclass(frozen=True)
class JobSpec:
    """What to render. Sizes are already resolved (no ``auto``)."""

    prompt: str
    model: str
    n: int = 1
    width: int = 512
    height: int = 512
    output_format: str = OutputFormat.PNG.value
    output_compression: int | None = None
    seed: int = 0
    steps: int | None = None
    quality: str | None = None
    # "opaque", or "transparent": the picture's background is keyed out to alpha 0.
    background: str = "opaque"
    # OpenAI's ``moderation``: "auto", or "low" (relaxed where the tier allows it).
    moderation: str = "auto"
    # An edit: blob keys of the source image, its mask (OpenAI's meaning: alpha 0 may
    # change) and the model's own encoding of the source when Daguerre made it. Images
    # travel by blob key, never inside Temporal payloads.
    source_key: str | None = None
    mask_key: str | None = None
    source_encoding_key: str | None = None
    # How many partial images a streaming client asked for (0-3); see partial_steps().
    partial_images: int = 0
    # An edit's fingerprint: its uploads and text fields as sent, so that a retry with
    # the same Idempotency-Key is known for the same request (or a 409 if it is not).
    request_digest: str | None = None

    @property
    def is_edit(self) -> bool:
        return self.source_key is not None or self.source_encoding_key is not None


def partial_steps(total_steps: int, partial_images: int) -> list[int]:
    """The render steps after which partial image 0, 1, ... is taken: spread evenly over
    the render and never the last step (that one is the final image). Worker and gateway
    both use it, so the gateway knows which partial a step means without being told.
    For 8 steps: 1 partial -> [4], 2 -> [3, 5], 3 -> [2, 4, 6]."""
    if partial_images <= 0 or total_steps <= 1:
        return []
    count = min(partial_images, total_steps - 1)
    steps = [round(total_steps * (j + 1) / (count + 1)) for j in range(count)]
    # Rounding can repeat a step for short renders; keep them strictly increasing.
    out: list[int] = []
    for step in steps:
        step = max(step, out[-1] + 1 if out else 1)
        if step < total_steps:
            out.append(step)
    return out


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    tier: str
    product: str


@dataclass(frozen=True)
class ImageRecord:
    id: str
    job_id: str
    index: int
    account_id: str
    blob_key: str
    encoding_key: str | None
    media_type: str
    width: int
    height: int
    # The prompt as the model understood it (OpenAI's ``revised_prompt``); None when the
    # model offers no reading of its own.
    revised_prompt: str | None = None


@dataclass
class JobRecord:
    """One row of the jobs table, as the rest of the code sees it."""

    id: str
    account_id: str
    pool: str
    status: JobStatus
    spec: JobSpec
    created_at: float
    step: int = 0
    total_steps: int | None = None
    preview_key: str | None = None
    resumed_from_step: int | None = None
    attempts: int = 0
    # Times the render handed its slot to higher-priority work (and resumed later).
    preemptions: int = 0
    error: str | None = None
    error_code: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    images: list[ImageRecord] = field(default_factory=list)
    tier: str | None = None
    priority: int | None = None
    degraded: bool = False
    webhook_url: str | None = None
    # The id the client chose (POST /v1/jobs {"id": ...}), unique per account only; ``id``
    # is then derived from it and the account (see gateway/services/jobs.py new_job_id), so that
    # two accounts may use the same one and neither learns that the other did.
    client_id: str | None = None
    # When the retention sweep deleted its images, uploads and previews (None: kept).
    expired_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def public_id(self) -> str:
        """The job's id as its owner knows it: their own id, else the row's."""
        return self.client_id if self.client_id is not None else self.id


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    account_id: str
    title: str | None
    created_at: float
    updated_at: float
    turn_count: int = 0


@dataclass(frozen=True)
class TurnRecord:
    id: str
    conversation_id: str
    index: int  # from 1
    prompt: str
    mode: str  # "new" | "edit"
    parent_turn_id: str | None
    job_id: str
    created_at: float


def default_seed(job_id: str) -> int:
    """A stable seed per job, so a retried render draws the same picture."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big")
