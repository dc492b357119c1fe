"""OpenAI's Images API: generations and edits (both can stream), plus the image files
they link to."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from daguerre.domain import JobRecord, resolved_quality
from daguerre.gateway.access import gates
from daguerre.gateway.access.streams import Release
from daguerre.gateway.api import image_stream, sse
from daguerre.gateway.api.deps import AccountDep, OptionalAccountDep, ServicesDep
from daguerre.gateway.api.errors import APIError, bad_request, not_found, retry_later
from daguerre.gateway.api.schemas import (
    ImageData,
    ImageEditCreate,
    ImageGenerateCreate,
    ImageList,
    ImageListed,
    ImagesPublic,
)
from daguerre.gateway.context import Services
from daguerre.gateway.services import edits, image_blobs, job_ids, job_waits, jobs
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/v1/images", tags=["images"])
# The answer's JSON shape (the handlers return Any: a stream is the other answer), so
# that /openapi.json documents it, ``revised_prompt`` included.
_IMAGES_OR_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"model": ImagesPublic, "content": {"text/event-stream": {}}}
}


@router.post(
    "/generations",
    response_model_exclude_none=True,
    responses=_IMAGES_OR_STREAM,
)
async def create_image(
    body: ImageGenerateCreate,
    account: AccountDep,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    """OpenAI's image generation; with ``stream: true``, Server-Sent Events of
    ``partial_images`` partial images, then the image (see image_stream.py)."""
    job_id = job_ids.new_job_id(account, None, idempotency_key)
    spec = jobs.resolve_spec(services.settings, body, job_id)
    if body.stream:
        spec = dataclasses.replace(spec, partial_images=body.partial_images or 0)
    # A stream's slot before its job: a refused stream starts no work.
    slot = services.streams.acquire(account.id) if body.stream else None
    try:
        # The client waits on this connection for the image: refuse rather than defer.
        job = await jobs.submit(
            services, account, job_id, spec, request, can_defer=False, fresh=idempotency_key is None
        )
    except BaseException:
        if slot is not None:
            slot()
        raise
    return await _answer(services, job, body, request, "image_generation", slot)


_IMAGE_REFERENCE = {
    "type": "object",
    "properties": {
        "image_url": {"type": "string", "description": "A data URL."},
        "file_id": {"type": "string"},
    },
}
# The form is read by hand (edits.read_form) to accept both "image" and "image[]" and
# to word every error OpenAI's way; this tells /openapi.json what it takes.
_EDIT_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "prompt"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "image[]": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        },
                        "mask": {"type": "string", "format": "binary"},
                        **ImageEditCreate.model_json_schema()["properties"],
                    },
                }
            },
            # The same edit with its images as data URLs (gateway/services/json_body.py).
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images", "prompt"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": _IMAGE_REFERENCE,
                            "minItems": 1,
                        },
                        "mask": _IMAGE_REFERENCE,
                        **ImageEditCreate.model_json_schema()["properties"],
                    },
                }
            },
        },
    }
}


@router.post(
    "/edits",
    response_model_exclude_none=True,
    responses=_IMAGES_OR_STREAM,
    openapi_extra=_EDIT_FORM,
)
async def edit_image(
    account: AccountDep,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Any:
    """OpenAI's image edit: multipart ``image`` (or ``image[]``), optional ``mask``
    (transparent = may change), ``prompt`` and the generation fields. An
    ``Idempotency-Key`` makes a retried request the same job."""

    fetch = functools.partial(image_blobs.file_bytes, services, account.id)
    form = await edits.read_form(request, services.settings, fetch)  # nothing decoded yet
    job_id = job_ids.new_job_id(account, None, idempotency_key)
    draft = edits.draft_spec(services.settings, form, job_id)
    # Decoding and storing the uploads wait until the job is admitted (see edits.py).
    prepare = functools.partial(
        edits.prepare, services.settings, services.store.blobs, form, job_id
    )
    slot = services.streams.acquire(account.id) if form.params.stream else None
    try:
        # The client waits on this connection for the image: refuse rather than defer.
        job = await jobs.submit(
            services,
            account,
            job_id,
            draft,
            request,
            can_defer=False,
            fresh=idempotency_key is None,
            prepare=prepare,
        )
    except BaseException:
        if slot is not None:
            slot()
        await edits.discard_uploads(services.store, job_id)
        raise
    return await _answer(services, job, form.params, request, "image_edit", slot)


async def _answer(
    services: Services,
    job: JobRecord,
    body: ImageGenerateCreate,
    request: Request,
    kind: str,
    slot: Release | None = None,
) -> ImagesPublic | StreamingResponse:
    """The stream (``slot``: its place among the account's open streams), or the
    image once its job is done."""
    if slot is not None:
        return sse.response(image_stream.events(services, job.id, kind), slot)
    try:
        async with asyncio.timeout(services.settings.sync_wait_timeout_s):
            done = await job_waits.wait_finished(services, job.id)
    except TimeoutError:
        message = (
            f"The image is still rendering as job '{job.id}'; fetch it from GET /v1/jobs/{job.id}."
        )
        raise retry_later(message, "timeout", retry_after_s=10) from None
    if done is None:
        raise APIError(500, f"Job '{job.id}' disappeared.", type="server_error")
    error = sse.outcome_error(done, f"Job '{done.id}'")
    if error is not None:
        raise error
    return await _images_body(services, done, body.response_format, str(request.base_url))


async def _images_body(
    services: Services, job: JobRecord, response_format: str, base_url: str
) -> ImagesPublic:
    data = []
    for image in job.images:
        revised = image.revised_prompt
        if response_format == "url":
            url = jobs.image_url(services, base_url, image)
            data.append(ImageData(url=url, revised_prompt=revised))
        else:
            raw = await image_blobs.read_image(services, image, job)
            data.append(ImageData(b64_json=base64.b64encode(raw).decode(), revised_prompt=revised))
    spec = job.spec
    return ImagesPublic(
        created=int(time.time()),
        data=data,
        usage=image_stream.usage(job),
        background=spec.background,
        output_format=spec.output_format,
        quality=resolved_quality(spec.quality),
        size=f"{spec.width}x{spec.height}",
    )


@router.get("", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def list_images(
    account: AccountDep,
    services: ServicesDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 20,
    after: Annotated[
        str | None, Query(max_length=80, description="The last image id of the page before.")
    ] = None,
) -> ImageList:
    """The caller's own images, newest first (by when they were asked for), a page at a
    time: one request for a gallery, however many jobs and conversations made them."""
    list_for = services.store.images.list_for
    page = await run_blocking(list_for, account.id, limit, after)
    if page is None:  # another account's image is no different from a missing one
        raise bad_request(f"No image found with id '{after}' to list after.", param="after")
    base_url = str(request.base_url)
    data = [
        ImageListed(
            id=listed.image.id,
            url=jobs.image_url(services, base_url, listed.image),
            media_type=listed.image.media_type,
            width=listed.image.width,
            height=listed.image.height,
            created_at=int(listed.created_at),
            job_id=listed.job_id,
            prompt=listed.prompt,
            revised_prompt=listed.image.revised_prompt,
            conversation_id=listed.conversation_id,
        )
        for listed in page.images
    ]
    first, last = (data[0].id, data[-1].id) if data else (None, None)
    return ImageList(data=data, first_id=first, last_id=last, has_more=page.has_more)


@router.get(
    "/files/{image_id}",
    responses={200: {"content": {"image/png": {}}}, **gates.READ_LIMIT_RESPONSES},
    dependencies=[gates.ReadLimit],  # with a key; a signed link's holder has no account
)
async def image_file(
    image_id: str,
    services: ServicesDep,
    account: OptionalAccountDep,
    exp: int | None = None,
    sig: str | None = None,
) -> Response:
    """An image, for its owner's API key or for a signed link (which needs no key)."""
    # Who may see it is settled before the id reaches the database: the signature (an
    # HMAC of the id, cheap) or the key. A link we signed names an image we stored.
    owner: str | None = None  # whose image it must be; None: a signed link's holder
    if exp is not None and sig is not None:
        if not services.signer.verify(image_id, exp, sig):
            message = "This image link has expired or is not valid."
            raise APIError(403, message, code="bad_signature")
    elif account is None:
        raise APIError(
            401,
            "Send the owner's API key (Authorization: Bearer KEY) or use a signed link.",
            code="invalid_api_key",
        )
    else:
        owner = account.id
    image = await run_blocking(services.store.jobs.get_image, image_id)
    if image is not None and owner is not None and image.account_id != owner:
        image = None  # someone else's image is no different from a missing one
    if image is None:
        raise not_found(f"No image found with id '{image_id}'.")
    raw = await image_blobs.read_image(services, image)
    return Response(
        raw, media_type=image.media_type, headers={"Cache-Control": "private, max-age=3600"}
    )
