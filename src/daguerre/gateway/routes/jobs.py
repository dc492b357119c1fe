"""The native job API: submit, look, cancel, and follow progress as Server-Sent Events."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse

from daguerre.domain import ProgressEvent
from daguerre.gateway import jobs
from daguerre.gateway.deps import AccountDep, ServicesDep
from daguerre.gateway.errors import bad_request
from daguerre.gateway.image_stream import with_keepalive
from daguerre.gateway.schemas import JobCreate, JobPublic
from daguerre.gateway.services import Services

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def create_job(
    body: JobCreate,
    account: AccountDep,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JobPublic:
    job_id = jobs.new_job_id(account, body.id, idempotency_key)
    spec = jobs.resolve_spec(services.settings, body, job_id, seed=body.seed, steps=body.steps)
    if body.webhook_url is not None and services.settings.webhook_secret is None:
        raise bad_request(
            "Invalid value for 'webhook_url': this server has no webhook secret "
            "(DAGUERRE_WEBHOOK_SECRET), so it cannot sign webhooks.",
            param="webhook_url",
        )
    fresh = body.id is None and idempotency_key is None
    job = await jobs.submit(services, account, job_id, spec, request, body.webhook_url, fresh=fresh)
    return await jobs.describe(services, job, str(request.base_url))


@router.get("/{job_id}")
async def get_job(
    job_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> JobPublic:
    job = await jobs.owned_job(services, account, job_id)
    return await jobs.describe(services, job, str(request.base_url))


@router.delete("/{job_id}")
async def cancel_job(
    job_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> JobPublic:
    job = await jobs.cancel(services, account, job_id)
    return await jobs.describe(services, job, str(request.base_url))


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def job_events(
    job_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> StreamingResponse:
    """``state`` (the job now), ``progress`` (step i of n, with a base64 PNG preview
    when the model has one), then one of ``completed``, ``failed`` or ``cancelled``."""
    await jobs.owned_job(services, account, job_id)  # 404 before the stream starts
    return StreamingResponse(
        # Keep-alive comments during a quiet stretch (a long queue) stop proxies from
        # closing the connection.
        with_keepalive(_sse(services, job_id, str(request.base_url))),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_data(services: Services, event: ProgressEvent, base_url: str) -> str:
    body: dict[str, Any] = (await jobs.describe(services, event.job, base_url)).model_dump()
    if event.preview_png is not None:
        body["preview_png_b64"] = base64.b64encode(event.preview_png).decode()
    return f"event: {event.kind}\ndata: {json.dumps(body)}\n\n"


async def _sse(services: Services, job_id: str, base_url: str) -> AsyncIterator[str]:
    async for event in services.feed.watch(job_id):
        yield await _event_data(services, event, base_url)
