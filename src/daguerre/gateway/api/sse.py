"""One way to answer with Server-Sent Events: the framing, the keep-alives, the headers,
and how a finished job's outcome reads as an OpenAI error.

Three streams use it (a native job's events, OpenAI's image streams, and through them the
chat page), and OpenAI's non-streaming image routes share the outcome -> error mapping, so
a failed render reads the same whether the client waited on the connection or streamed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from daguerre.domain import ErrorCode, JobRecord, JobStatus
from daguerre.gateway.access.streams import Release, SlotStreamingResponse
from daguerre.gateway.api.errors import APIError, bad_request

KEEPALIVE_S = 15.0
MEDIA_TYPE = "text/event-stream"
# No cache may hold an event back, nor may a proxy such as nginx buffer it.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(event: str, body: dict[str, Any]) -> str:
    """One event: its name, then its body as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(body)}\n\n"


def response(events: AsyncIterator[str], slot: Release) -> SlotStreamingResponse:
    """The streaming answer: ``events`` with keep-alives, holding the account's stream
    ``slot`` until it ends."""
    return SlotStreamingResponse(
        with_keepalive(events), slot, media_type=MEDIA_TYPE, headers=HEADERS
    )


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


def outcome_error(job: JobRecord, subject: str) -> APIError | None:
    """What a finished job's outcome is as an error (None: it succeeded). ``subject`` names
    what was cancelled, e.g. "Job 'j1'". A request the model cannot draw is the client's
    (400); any other failure is ours (500)."""
    if job.status is JobStatus.SUCCEEDED:
        return None
    if job.status is JobStatus.CANCELLED:
        return APIError(409, f"{subject} was cancelled before it finished.", code="cancelled")
    reason = job.error or "the render failed"
    if job.error_code == ErrorCode.INVALID_REQUEST:
        return bad_request(f"The model cannot draw this request: {reason}", param="prompt")
    return APIError(
        500, f"Image generation failed: {reason}", type="server_error", code=job.error_code
    )


def error_event(error: APIError) -> str:
    """``error`` as the ``error`` event of OpenAI's image streams (which has no param)."""
    body = {
        "message": error.message,
        "type": error.type,
        "param": None,
        "code": error.code or "render_failed",
    }
    return frame("error", {"type": "error", "error": body})
