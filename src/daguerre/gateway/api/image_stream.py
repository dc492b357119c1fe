"""OpenAI's image streams: Server-Sent Events of partial images, then the image.

``POST /v1/images/generations`` and ``/v1/images/edits`` with ``stream: true`` answer
``<kind>.partial_image`` events (``kind`` is ``image_generation`` or ``image_edit``)
and one ``<kind>.completed`` event per image, with the fields the official clients
parse. A partial image is the model's real preview after a given step, which the
worker stored as a blob (at the requested size and format) before it recorded the
step: each progress event names the partial images written so far
(``ProgressEvent.partial_keys``), so this stream sends the ones it has not sent yet and
never misses one, whether the feed polls the row or hears about it through Redis.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from daguerre.domain import JobRecord, JobSpec, resolved_quality
from daguerre.gateway.api import sse
from daguerre.gateway.api.errors import APIError
from daguerre.gateway.api.schemas import InputTokensDetails, OutputTokensDetails, Usage
from daguerre.gateway.context import Services
from daguerre.gateway.services import image_blobs
from daguerre.progress import ProgressEvent


def usage(job: JobRecord) -> Usage:
    # An estimate in OpenAI's units: ~4 characters per text token, and one token per
    # 32x32 pixels of each output image (and of the source image of an edit).
    spec = job.spec
    text = max(1, math.ceil(len(spec.prompt) / 4))
    per_image = math.ceil(spec.width / 32) * math.ceil(spec.height / 32)
    image_in = per_image if spec.is_edit else 0
    output = spec.n * per_image
    return Usage(
        total_tokens=text + image_in + output,
        input_tokens=text + image_in,
        output_tokens=output,
        input_tokens_details=InputTokensDetails(text_tokens=text, image_tokens=image_in),
        output_tokens_details=OutputTokensDetails(image_tokens=output),
    )


def render_fields(spec: JobSpec) -> dict[str, Any]:
    """What the image is, as OpenAI's answers and events echo it (Images and Responses)."""
    return {
        "size": f"{spec.width}x{spec.height}",
        "quality": resolved_quality(spec.quality),
        "background": spec.background,  # what the image is: opaque or transparent
        "output_format": spec.output_format,
    }


def _common(job: JobRecord) -> dict[str, Any]:
    return {"created_at": int(time.time()), **render_fields(job.spec)}


async def new_partials(
    services: Services, event: ProgressEvent, sent: int
) -> AsyncIterator[tuple[int, str]]:
    """(index, base64) of the partial images ``event`` names beyond the first ``sent``
    (one that cannot be read is skipped: its index is never sent again)."""
    for index, key in enumerate(event.partial_keys[sent:], start=sent):
        try:
            data = await services.store.run(services.store.blobs.get, key)
        except KeyError:
            continue
        yield index, base64.b64encode(data).decode()


async def _partials(
    services: Services, event: ProgressEvent, sent: int, kind: str
) -> AsyncIterator[str]:
    async for index, b64 in new_partials(services, event, sent):
        body = {
            "type": f"{kind}.partial_image",
            "b64_json": b64,
            "partial_image_index": index,
            **_common(event.job),
        }
        yield sse.frame(body["type"], body)


async def events(services: Services, job_id: str, kind: str) -> AsyncIterator[str]:
    """The SSE body for job ``job_id``; ``kind`` names the event family."""
    sent = 0  # partial images sent so far
    async for event in services.feed.watch(job_id):
        job = event.job
        async for frame in _partials(services, event, sent, kind):
            yield frame
        sent = max(sent, len(event.partial_keys))
        if event.kind == "completed":
            for image in job.images:
                try:
                    data = await image_blobs.read_image(services, image, job)
                except APIError as missing:  # never a "completed" with no image in it
                    yield sse.error_event(missing)
                    return
                body = {
                    "type": f"{kind}.completed",
                    "b64_json": base64.b64encode(data).decode(),
                    **_common(job),
                    "usage": usage(job).model_dump(),
                }
                yield sse.frame(body["type"], body)
        elif event.kind in ("failed", "cancelled"):
            error = sse.outcome_error(job, "The image")
            if error is not None:
                yield sse.error_event(error)
