"""OpenAI's Images API: POST /v1/images/generations, plus the image files it links to."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, Response

from daguerre.domain import ErrorCode, JobRecord, JobStatus
from daguerre.gateway import jobs
from daguerre.gateway.deps import AccountDep, OptionalAccountDep, ServicesDep
from daguerre.gateway.errors import APIError, bad_request, not_found
from daguerre.gateway.schemas import (
    ImageData,
    ImageGenerateCreate,
    ImagesPublic,
    InputTokensDetails,
    Usage,
)
from daguerre.gateway.services import Services

router = APIRouter(prefix="/v1/images", tags=["images"])


def _usage(job: JobRecord) -> Usage:
    # An estimate in OpenAI's units: ~4 characters per text token, and one output
    # token per 32x32 pixels of each image.
    spec = job.spec
    text = max(1, math.ceil(len(spec.prompt) / 4))
    output = spec.n * math.ceil(spec.width / 32) * math.ceil(spec.height / 32)
    return Usage(
        total_tokens=text + output,
        input_tokens=text,
        output_tokens=output,
        input_tokens_details=InputTokensDetails(text_tokens=text, image_tokens=0),
    )


def _raise_for_outcome(job: JobRecord) -> None:
    if job.status is JobStatus.SUCCEEDED:
        return
    if job.status is JobStatus.CANCELLED:
        raise APIError(409, f"Job '{job.id}' was cancelled before it finished.", code="cancelled")
    reason = job.error or "the render failed"
    if job.error_code == ErrorCode.INVALID_REQUEST:
        raise bad_request(f"The model cannot draw this request: {reason}", param="prompt")
    raise APIError(
        500, f"Image generation failed: {reason}", type="server_error", code=job.error_code
    )


@router.post("/generations", response_model_exclude_none=True)
async def create_image(
    body: ImageGenerateCreate,
    account: AccountDep,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> ImagesPublic:
    if body.stream:
        raise bad_request(
            "Streaming is not supported yet; use POST /v1/jobs and its /events stream "
            "for partial images.",
            param="stream",
        )
    job_id = jobs.new_job_id(account, None, idempotency_key)
    spec = jobs.resolve_spec(services.settings, body, job_id)
    job = await jobs.submit(services, account, job_id, spec)
    try:
        async with asyncio.timeout(services.settings.sync_wait_timeout_s):
            done = await jobs.wait_finished(services, job.id)
    except TimeoutError:
        raise APIError(
            503,
            f"The image is still rendering as job '{job.id}'; fetch it from GET /v1/jobs/{job.id}.",
            type="server_error",
            code="timeout",
            headers={"Retry-After": "10"},
        ) from None
    if done is None:
        raise APIError(500, f"Job '{job.id}' disappeared.", type="server_error")
    _raise_for_outcome(done)
    return await _images_body(services, done, body.response_format, str(request.base_url))


async def _images_body(
    services: Services, job: JobRecord, response_format: str, base_url: str
) -> ImagesPublic:
    data = []
    for image in job.images:
        if response_format == "url":
            data.append(ImageData(url=jobs.image_url(services, base_url, image)))
        else:
            raw = await anyio.to_thread.run_sync(services.store.blobs.get, image.blob_key)
            data.append(ImageData(b64_json=base64.b64encode(raw).decode()))
    spec = job.spec
    return ImagesPublic(
        created=int(time.time()),
        data=data,
        usage=_usage(job),
        output_format=spec.output_format,
        quality=spec.quality,
        size=f"{spec.width}x{spec.height}",
    )


@router.get("/files/{image_id}", responses={200: {"content": {"image/png": {}}}})
async def image_file(
    image_id: str,
    services: ServicesDep,
    account: OptionalAccountDep,
    exp: int | None = None,
    sig: str | None = None,
) -> Response:
    """An image, for its owner's API key or for a signed link (which needs no key)."""
    image = await anyio.to_thread.run_sync(services.store.jobs.get_image, image_id)
    if exp is not None and sig is not None:
        if image is None or not services.signer.verify(image_id, exp, sig):
            message = "This image link has expired or is not valid."
            raise APIError(403, message, code="bad_signature")
    elif account is None:
        raise APIError(
            401,
            "Send the owner's API key (Authorization: Bearer KEY) or use a signed link.",
            code="invalid_api_key",
        )
    elif image is not None and image.account_id != account.id:
        image = None  # someone else's image is no different from a missing one
    if image is None:
        raise not_found(f"No image found with id '{image_id}'.")
    raw = await anyio.to_thread.run_sync(services.store.blobs.get, image.blob_key)
    return Response(
        raw, media_type=image.media_type, headers={"Cache-Control": "private, max-age=3600"}
    )
