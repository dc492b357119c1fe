"""The native job API: submit, look, cancel, and follow progress as Server-Sent Events."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse

from daguerre.gateway.access import gates
from daguerre.gateway.api import sse
from daguerre.gateway.api.deps import AccountDep, ServicesDep
from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.schemas import JobCreate, JobPublic
from daguerre.gateway.context import Services
from daguerre.gateway.services import job_ids, jobs
from daguerre.progress import ProgressEvent
from daguerre.webhook_guard import AllowList, DestinationRefused, check_url

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def create_job(
    body: JobCreate,
    account: AccountDep,
    services: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JobPublic:
    job_id = job_ids.new_job_id(account, body.id, idempotency_key)
    # The default seed follows the id the client knows, as it did when that was the row's
    # id: a request repeated across the change still matches its job.
    seed_id = body.id or job_id
    spec = jobs.resolve_spec(services.settings, body, seed_id, seed=body.seed, steps=body.steps)
    if body.webhook_url is not None:
        # The cheap checks (no DNS); the worker resolves and checks again at delivery.
        try:
            check_url(body.webhook_url, AllowList.parse(services.settings.webhook_allow))
        except DestinationRefused as err:
            raise bad_request(f"Invalid value for 'webhook_url': {err}.", "webhook_url") from None
    fresh = body.id is None and idempotency_key is None
    job = await jobs.submit(
        services, account, job_id, spec, request, body.webhook_url, fresh=fresh, client_id=body.id
    )
    return await jobs.describe(services, job, str(request.base_url))


@router.get("/{job_id}", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def get_job(
    job_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> JobPublic:
    job = await jobs.owned_job(services, account, job_id)
    return await jobs.describe(services, job, str(request.base_url))


@router.delete("/{job_id}", dependencies=[gates.ReadLimit], responses=gates.READ_LIMIT_RESPONSES)
async def cancel_job(
    job_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> JobPublic:
    job = await jobs.cancel(services, account, job_id)
    return await jobs.describe(services, job, str(request.base_url))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    dependencies=[gates.ReadLimit],
    responses=gates.READ_LIMIT_RESPONSES,
)
async def job_events(
    job_id: str, account: AccountDep, services: ServicesDep, request: Request
) -> StreamingResponse:
    """``state`` (the job now), ``progress`` (step i of n, with a base64 PNG preview
    when the model has one), then one of ``completed``, ``failed`` or ``cancelled``."""
    job = await jobs.owned_job(services, account, job_id)  # 404 before the stream starts
    return sse.response(
        # The feed follows the row, by its own id.
        _events(services, job.id, str(request.base_url)),
        services.streams.acquire(account.id),  # a 429 past the account's open streams
    )


async def _event_data(services: Services, event: ProgressEvent, base_url: str) -> str:
    body: dict[str, Any] = (await jobs.describe(services, event.job, base_url)).model_dump()
    if event.preview_png is not None:
        body["preview_png_b64"] = base64.b64encode(event.preview_png).decode()
    return sse.frame(event.kind, body)


async def _events(services: Services, job_id: str, base_url: str) -> AsyncIterator[str]:
    async for event in services.feed.watch(job_id):
        yield await _event_data(services, event, base_url)
