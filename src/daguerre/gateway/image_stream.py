"""OpenAI's image streams: Server-Sent Events of partial images, then the image.

``POST /v1/images/generations`` and ``/v1/images/edits`` with ``stream: true`` answer
``<kind>.partial_image`` events (``kind`` is ``image_generation`` or ``image_edit``)
and one ``<kind>.completed`` event per image, with the fields the official clients
parse. A partial image is the model's real preview after a given step, which the
worker stored as a blob (at the requested size and format) before it published the
step: so this stream only follows the job's step and never misses one, whether the
feed polls the row or hears about it through Redis.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from daguerre.domain import ErrorCode, JobRecord, JobStatus, partial_key, partial_steps
from daguerre.gateway.schemas import InputTokensDetails, Usage
from daguerre.gateway.services import Services

KEEPALIVE_S = 15.0
BACKGROUNDS = ("transparent", "opaque", "auto")


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
    )


def _sse(event: str, body: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(body)}\n\n"


def _common(job: JobRecord, background: str | None) -> dict[str, Any]:
    spec = job.spec
    return {
        "created_at": int(time.time()),
        "size": f"{spec.width}x{spec.height}",
        "quality": spec.quality or "auto",
        "background": background if background in BACKGROUNDS else "auto",
        "output_format": spec.output_format,
    }


def _error(job: JobRecord) -> dict[str, Any]:
    if job.status is JobStatus.CANCELLED:
        message, kind, code = (
            "The image was cancelled before it finished.",
            "invalid_request_error",
            "cancelled",
        )
    elif job.error_code == ErrorCode.INVALID_REQUEST:
        message = f"The model cannot draw this request: {job.error}"
        kind, code = "invalid_request_error", "invalid_value"
    else:
        message = f"Image generation failed: {job.error or 'the render failed'}"
        kind, code = "server_error", job.error_code or "render_failed"
    return {
        "type": "error",
        "error": {"message": message, "type": kind, "param": None, "code": code},
    }


async def _blob(services: Services, key: str) -> bytes | None:
    try:
        return await anyio.to_thread.run_sync(services.store.blobs.get, key)
    except KeyError:
        return None


async def events(
    services: Services, job_id: str, kind: str, background: str | None = None
) -> AsyncIterator[str]:
    """The SSE body for job ``job_id``; ``kind`` names the event family."""
    sent = 0  # partial images sent so far
    async for event in services.feed.watch(job_id):
        job = event.job
        if job.total_steps is not None:
            due = partial_steps(job.total_steps, job.spec.partial_images)
            while sent < len(due) and job.step >= due[sent]:
                data = await _blob(services, partial_key(job.id, sent, job.spec.output_format))
                if data is not None:
                    body = {
                        "type": f"{kind}.partial_image",
                        "b64_json": base64.b64encode(data).decode(),
                        "partial_image_index": sent,
                        **_common(job, background),
                    }
                    yield _sse(body["type"], body)
                sent += 1
        if event.kind == "completed":
            for image in job.images:
                data = await _blob(services, image.blob_key) or b""
                body = {
                    "type": f"{kind}.completed",
                    "b64_json": base64.b64encode(data).decode(),
                    **_common(job, background),
                    "usage": usage(job).model_dump(),
                }
                yield _sse(body["type"], body)
        elif event.kind in ("failed", "cancelled"):
            yield _sse("error", _error(job))


async def with_keepalive(
    source: AsyncIterator[str], interval_s: float = KEEPALIVE_S
) -> AsyncIterator[str]:
    """``source``, plus a comment line whenever it is quiet for ``interval_s`` (a long
    queue), which stops proxies from closing the connection."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), interval_s)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                break
            yield item
        await task  # surfaces an error from the source, if any
    finally:
        task.cancel()
