"""POST /v1/images/edits: reading OpenAI's request into a job spec.

The request is multipart, ``image`` (or several ``image[]``) and an optional ``mask`` as
files beside the same text fields as a generation; or JSON, with ``images`` and ``mask``
as data URLs (json_body.py). The text fields are checked first and the job admitted
(rate limits, rollout, admission) before any upload is decoded: a refused request costs
reading its body and nothing more. Then the uploads are checked (uploads.py), and the
first image and the mask go to the blob store as PNG: the worker reads them from there,
never from a Temporal payload. A model takes as many images as its catalog entry's
``edit_images`` (the built-in model edits one picture): more are a 400 that says so,
never silently dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from daguerre.blob_layout import upload_keys, upload_prefix
from daguerre.config import Settings
from daguerre.domain import JobSpec
from daguerre.gateway.api import text_guard
from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.schemas import ImageEditCreate
from daguerre.gateway.services import catalog_checks, jobs, json_body, uploads
from daguerre.image_bytes import png
from daguerre.store import Store
from daguerre.store.blobs import BlobStore
from daguerre.store.threads import run_blocking

IMAGE_FIELDS = ("image", "image[]")


@dataclass(frozen=True)
class EditForm:
    params: ImageEditCreate
    images: list[bytes]
    mask: bytes | None
    digest: str = ""  # the request as sent (request_digest): see fingerprint()


async def fingerprint(fields: dict[str, str], images: list[bytes], mask: bytes | None) -> str:
    """The edit as the client sent it, uploads and text fields, streaming aside (a retry
    may ask to stream or not): equal for a retry of the same request. Hashing up to
    ``max_upload_bytes`` of uploads is CPU work: it runs off the event loop."""
    return await run_blocking(_digest, fields, images, mask)


def _digest(fields: dict[str, str], images: list[bytes], mask: bytes | None) -> str:
    digest = hashlib.sha256()
    for name in sorted(set(fields) - {"stream", "partial_images"}):
        digest.update(f"{name}={fields[name]}\n".encode())
    for part in (*images, mask or b""):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


async def _read_file(value: object, param: str) -> bytes:
    if not isinstance(value, UploadFile):
        raise bad_request(f"Invalid value for '{param}': send it as a file upload.", param=param)
    return await value.read()


async def read_form(request: Request, settings: Settings, fetch: json_body.FetchFile) -> EditForm:
    """The edit as sent; ``fetch`` reads the caller's files that a JSON body names."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        document = await json_body.read(request)
        params, images, mask = await json_body.parse(document, settings.max_upload_images, fetch)
        fields = {k: json.dumps(v, sort_keys=True) for k, v in document.items()}
        return EditForm(params, images, mask, await fingerprint(fields, images, mask))
    if not content_type.startswith("multipart/form-data"):
        raise bad_request(
            "POST /v1/images/edits takes multipart/form-data with the image file(s), or JSON "
            "with the images as data URLs.",
            code="invalid_content_type",
        )
    limit = settings.max_upload_images
    # One more file than allowed is enough to say "too many"; starlette stops past it.
    async with request.form(max_files=limit + 2, max_fields=64) as form:
        files = [v for name in IMAGE_FIELDS for v in form.getlist(name)]
        if not files:
            raise bad_request(
                "Missing required parameter: 'image'.",
                param="image",
                code="missing_required_parameter",
            )
        if len(files) > limit:
            raise bad_request(
                f"Invalid value for 'image': {len(files)} images; at most {limit} are allowed.",
                param="image",
                code="too_many_images",
            )
        images = [await _read_file(f, "image") for f in files]
        mask_value = form.get("mask")
        mask = await _read_file(mask_value, "mask") if mask_value is not None else None
        fields = {
            k: v for k, v in form.multi_items() if isinstance(v, str) and k not in IMAGE_FIELDS
        }
        if form.get("markup") is not None:  # a file OpenAI takes, refused by the schema
            fields["markup"] = "(a file)"
    text_guard.check_form(fields)  # NUL, control characters: a 400, never a 500
    try:
        params = ImageEditCreate.model_validate(fields)
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None
    return EditForm(params, images, mask, await fingerprint(fields, images, mask))


@dataclass(frozen=True)
class CheckedUploads:
    source_png: bytes
    mask_png: bytes | None
    size: tuple[int, int]


def check_uploads(form: EditForm, max_pixels: int) -> CheckedUploads:
    """Decode and check every upload (CPU work: run it in a thread)."""
    source = uploads.decode(form.images[0], "image", max_pixels)
    for data in form.images[1:]:
        # Checked so that a bad one is still a 400, then dropped: one decoded image at a
        # time besides the source, whatever the count.
        uploads.decode(data, "image", max_pixels).image.close()
    mask_png = None
    if form.mask is not None:
        mask = uploads.check_mask(uploads.decode(form.mask, "mask", max_pixels), source)
        mask_png = png(mask)
    # Stored as PNG whatever came in: one lossless format for the worker to read.
    return CheckedUploads(png(source.image), mask_png, source.size)


def edit_size(settings: Settings, params: ImageEditCreate, source: tuple[int, int]) -> str:
    """``auto`` means the source's own size when the model serves it."""
    if params.size != "auto":
        return params.size
    _, entry = catalog_checks.resolve_model(settings, params.model)
    width, height = source
    if catalog_checks.serves(width, height, entry):
        return f"{width}x{height}"
    return "auto"


def draft_spec(settings: Settings, form: EditForm, job_id: str) -> JobSpec:
    """The edit as far as it is known before any upload is decoded: enough for the
    checks that run first (the model and an explicit size against the catalog, the
    image count against the rate limit, the edit feature's rollout). ``size="auto"``
    stands for the model's own auto size until the source's size is known."""
    spec = jobs.resolve_spec(settings, form.params, job_id)
    entry = settings.models[spec.model]
    if len(form.images) > entry.edit_images:
        raise bad_request(
            f"Invalid value for 'image': model '{spec.model}' edits {entry.edit_images} "
            f"image(s) at a time, and {len(form.images)} were sent; send the picture to "
            "edit as 'image'.",
            param="image",
            code="too_many_images",
        )
    source_key, _ = upload_keys(job_id)
    return dataclasses.replace(
        spec,
        request_digest=form.digest,
        source_key=source_key,  # an edit, for the rollout check; stored by prepare()
        partial_images=(form.params.partial_images or 0) if form.params.stream else 0,
    )


async def prepare(
    settings: Settings, blobs: BlobStore, form: EditForm, job_id: str, draft: JobSpec
) -> JobSpec:
    """Decode and check the uploads, store them, and return the job that edits them.
    Runs once the job is admitted (jobs.submit's ``prepare``): the costly part of an
    edit, which a refused request never pays. What it stored before a failure is the
    caller's to remove (discard_uploads)."""
    checked = await run_blocking(check_uploads, form, settings.max_upload_pixels)
    params = form.params.model_copy(update={"size": edit_size(settings, form.params, checked.size)})
    spec = jobs.resolve_spec(settings, params, job_id)
    source_key, mask_key = upload_keys(job_id)
    await run_blocking(blobs.put, source_key, checked.source_png)
    if checked.mask_png is not None:
        await run_blocking(blobs.put, mask_key, checked.mask_png)
    return dataclasses.replace(
        spec,
        source_key=source_key,
        mask_key=mask_key if checked.mask_png is not None else None,
        partial_images=draft.partial_images,
        request_digest=draft.request_digest,
    )


async def discard_uploads(store: Store, job_id: str) -> None:
    """Remove the uploads of an edit that was never recorded (refused, or failed past
    prepare()); a recorded job keeps them, as its workflow (or the orphan reconciler)
    still needs them."""
    if await run_blocking(store.jobs.get, job_id) is None:
        await run_blocking(store.blobs.delete_prefix, upload_prefix(job_id))
