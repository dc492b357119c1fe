"""OpenAI's Responses API, for its image_generation tool: ``POST /v1/responses``
(answered when the image is done, streamed, or at once with ``background: true``),
``GET /v1/responses/{id}`` and ``POST /v1/responses/{id}/cancel``. What a response is
(a conversation turn) is in gateway/services/responses.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter

from daguerre.domain import JobRecord, JobStatus, TurnRecord
from daguerre.gateway.access import gates
from daguerre.gateway.api import image_stream, sse
from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.responses_schemas import ResponseCreate
from daguerre.gateway.context import Services
from daguerre.gateway.services import job_waits, jobs, responses

router = APIRouter(prefix="/v1/responses", tags=["responses"])


@router.post("")
async def create_response(body: ResponseCreate, account: AccountDep, services: ServicesDep) -> Any:
    tool = responses.tool_of(body)
    slot = services.streams.acquire(account.id) if body.stream else None
    try:
        turn, job = await responses.create(services, account, body, tool)
    except BaseException:
        if slot is not None:
            slot()
        raise
    if slot is not None:
        return sse.response(events(services, turn, job), slot)
    if body.background:
        return await responses.describe(services, turn, job, background=True)
    try:
        async with asyncio.timeout(services.settings.sync_wait_timeout_s):
            done = await job_waits.wait_finished(services, job.id)
    except TimeoutError:  # still rendering: answered as it stands, and GET follows it
        done = None
    return await responses.describe(services, turn, done or await _job_of(services, turn))


@router.get("/{response_id}", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def get_response(response_id: str, account: AccountDep, services: ServicesDep) -> Any:
    turn = await responses.owned_turn(services, account, response_id)
    return await responses.describe(services, turn, await _job_of(services, turn))


@router.post("/{response_id}/cancel")
async def cancel_response(response_id: str, account: AccountDep, services: ServicesDep) -> Any:
    turn = await responses.owned_turn(services, account, response_id)
    job = await _job_of(services, turn)
    if not job.is_terminal:
        job = await jobs.cancel(services, account, job.public_id)
    return await responses.describe(services, turn, job)


async def _job_of(services: Services, turn: TurnRecord) -> JobRecord:
    job = await services.store.run(services.store.jobs.get, turn.job_id)
    assert job is not None, "a turn's job is recorded with it"
    return job


async def events(services: Services, turn: TurnRecord, job: JobRecord) -> AsyncIterator[str]:
    """OpenAI's Responses stream for one image_generation call, numbered."""
    numbers = itertools.count()

    def frame(kind: str, **body: Any) -> str:
        return sse.frame(kind, {"type": kind, "sequence_number": next(numbers), **body})

    first = await responses.describe(services, turn, job)
    item_id = first["output"][0]["id"]
    yield frame("response.created", response=first)
    yield frame("response.in_progress", response=first)
    yield frame("response.output_item.added", output_index=0, item=first["output"][0])
    yield frame("response.image_generation_call.in_progress", output_index=0, item_id=item_id)
    generating, sent = False, 0
    async for event in services.feed.watch(job.id):
        if not generating and event.job.status is not JobStatus.QUEUED:
            generating = True
            yield frame(
                "response.image_generation_call.generating", output_index=0, item_id=item_id
            )
        async for index, b64 in image_stream.new_partials(services, event, sent):
            yield frame(
                "response.image_generation_call.partial_image",
                output_index=0,
                item_id=item_id,
                partial_image_index=index,
                partial_image_b64=b64,
            )
        sent = max(sent, len(event.partial_keys))
        if event.kind in ("completed", "failed", "cancelled"):
            done = await responses.describe(services, turn, event.job)
            if event.kind == "completed":
                yield frame(
                    "response.image_generation_call.completed", output_index=0, item_id=item_id
                )
            yield frame("response.output_item.done", output_index=0, item=done["output"][0])
            kind = "response.completed" if event.kind == "completed" else "response.failed"
            yield frame(kind, response=done)
            return
