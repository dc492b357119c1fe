"""What a job's webhook POSTs: one typed shape, built by the worker that sends it and
published in the gateway's /openapi.json (its ``webhooks`` section), so receivers can
generate a client for it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from daguerre.domain import JobRecord


class WebhookJob(BaseModel):
    id: str = Field(description="The job's id as its owner knows it (their own, if they chose it).")
    status: Literal["succeeded", "failed", "cancelled"]
    error: str | None = Field(description="Why it did not succeed; null when it did.")
    error_code: str | None = Field(description="invalid_request, render_failed or cancelled.")
    finished_at: float | None = Field(description="Unix seconds.")
    image_ids: list[str] = Field(description="Fetch each from GET /v1/images/files/{id}.")


class WebhookEvent(BaseModel):
    """Sent once a job is final, signed: ``Daguerre-Signature: t=<unix>,v1=<hex>[,v1=...]``
    (HMAC-SHA256 of ``"<t>." + body`` with the account's webhook secret). At least once:
    key on ``job.id``."""

    type: Literal["job.succeeded", "job.failed", "job.cancelled"]
    job: WebhookJob

    @classmethod
    def of(cls, job: JobRecord) -> WebhookEvent:
        status = job.status.value
        return cls.model_validate(
            {
                "type": f"job.{status}",
                "job": {
                    "id": job.public_id,
                    "status": status,
                    "error": job.error,
                    "error_code": job.error_code,
                    "finished_at": job.finished_at,
                    "image_ids": [image.id for image in job.images],
                },
            }
        )
