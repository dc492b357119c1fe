"""What a response's ``input`` may carry besides text: pictures of the caller's own
(``input_image`` parts, by data URL or file id, with the tool's ``input_image_mask``),
edited as ``/v1/images/edits`` edits them; and an earlier ``image_generation_call`` by
id, whose image the response edits (branching from any earlier picture of the thread).
"""

from __future__ import annotations

import functools
from typing import Any

from daguerre.domain import Account, JobRecord, TurnRecord
from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.responses_schemas import (
    ImageGenerationTool,
    ResponseCreate,
    checked,
)
from daguerre.gateway.api.schemas import ImageEditCreate, ImageReference
from daguerre.gateway.context import Services
from daguerre.gateway.services import edits, image_blobs, job_ids, jobs, json_body
from daguerre.store.threads import run_blocking


def images_of(body: ResponseCreate) -> list[ImageReference]:
    """The ``input_image`` parts of the input, as references."""
    found = []
    for item in body.input if isinstance(body.input, list) else []:
        content = item.get("content")
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "input_image":
                fields = {k: part.get(k) for k in ("image_url", "file_id")}
                found.append(checked(ImageReference, fields))
    return found


def call_ids_of(body: ResponseCreate) -> list[str]:
    """Ids of earlier image_generation_call items named in the input."""
    items = body.input if isinstance(body.input, list) else []
    return [str(i.get("id")) for i in items if i.get("type") == "image_generation_call"]


async def branch_turn(services: Services, account: Account, call_id: str) -> TurnRecord:
    """The caller's turn that made the call ``ig_<job id>``, or a 400 as for none."""
    job = None
    if call_id.startswith("ig_"):
        job = await run_blocking(services.store.jobs.find, account.id, call_id[3:])
    turn = None
    if job is not None:
        turn = await run_blocking(services.store.conversations.turn_of_job, account.id, job.id)
    if turn is None:
        raise bad_request(f"No image_generation_call found with id '{call_id}'.", param="input")
    return turn


async def edit_upload(
    services: Services,
    account: Account,
    conversation_id: str,
    body: ResponseCreate,
    tool: ImageGenerationTool,
    prompt: str,
) -> tuple[TurnRecord, JobRecord]:
    """A turn that edits the input's picture: read, checked and stored as an edit's
    upload is (edits.py), admitted first."""
    fetch = functools.partial(image_blobs.file_bytes, services, account.id)
    images = [await json_body.image_bytes(r, "input", fetch) for r in images_of(body)]
    mask = None
    if tool.input_image_mask is not None:
        reference = checked(ImageReference, tool.input_image_mask)
        mask = await json_body.image_bytes(reference, "input_image_mask", fetch)
    fields: dict[str, Any] = tool.model_dump(
        include={
            "size",
            "quality",
            "background",
            "output_format",
            "output_compression",
            "moderation",
            "partial_images",
            "model",
        },
        exclude_none=True,
    )
    params = ImageEditCreate(prompt=prompt, stream=body.stream, **fields)
    digest = await edits.fingerprint({"prompt": prompt}, images, mask)
    form = edits.EditForm(params, images, mask, digest)
    job_id = job_ids.fresh_job_id()
    draft = edits.draft_spec(services.settings, form, job_id)
    store = services.store
    turn = await run_blocking(
        store.conversations.add_turn, conversation_id, prompt, "edit", None, job_id
    )
    prepare = functools.partial(edits.prepare, services.settings, store.blobs, form, job_id)
    try:
        job = await jobs.submit(
            services, account, job_id, draft, can_defer=body.background, fresh=True, prepare=prepare
        )
    except BaseException:
        await run_blocking(store.conversations.discard_turn, turn.id)
        await edits.discard_uploads(store, job_id)
        raise
    return turn, job
