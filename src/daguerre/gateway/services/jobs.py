"""What the routers do with jobs: validate against the catalog, record, submit, cancel,
and describe. Kept out of the routers so both APIs share it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from daguerre.access import TierSettings
from daguerre.config import Settings
from daguerre.domain import (
    WAITING_STATUSES,
    Account,
    ImageRecord,
    JobRecord,
    JobSpec,
    JobStatus,
    default_seed,
)
from daguerre.engine.client import EngineUnavailable
from daguerre.gateway.access import gates
from daguerre.gateway.access.admission import Decision, apply_tier
from daguerre.gateway.access.refusals import remembered
from daguerre.gateway.api.errors import APIError, engine_unavailable, not_found
from daguerre.gateway.api.schemas import ImagePublic, JobPublic, RenderParams
from daguerre.gateway.context import Services
from daguerre.gateway.services import catalog_checks
from daguerre.gateway.services.reconciler import start_workflow
from daguerre.store.threads import run_blocking


def resolve_spec(
    settings: Settings,
    params: RenderParams,
    job_id: str,
    seed: int | None = None,
    steps: int | None = None,
) -> JobSpec:
    """The job to run, or a 400 naming the field the catalog cannot serve."""
    model, entry = catalog_checks.resolve_model(settings, params.model)
    width, height = catalog_checks.resolve_size(params.size, model, entry)
    background = catalog_checks.resolve_background(params, model, entry)
    catalog_checks.check_steps(steps, model, entry)
    return JobSpec(
        prompt=params.prompt,
        model=model,
        n=params.n,
        width=width,
        height=height,
        output_format=params.output_format,
        output_compression=params.output_compression,
        seed=seed if seed is not None else default_seed(job_id),
        steps=steps,
        quality=params.quality,
        background=background,
        moderation=params.moderation or "auto",
    )


# Work a submit does once the job is admitted and before it is recorded, such as
# decoding and storing an edit's uploads: given the spec, it returns the spec to record.
Prepare = Callable[[JobSpec], Awaitable[JobSpec]]


@dataclass(frozen=True)
class Admitted:
    """A new job that passed the gates: where it goes and how admission placed it."""

    pool: str
    tier: TierSettings
    decision: Decision


async def submit(
    services: Services,
    account: Account,
    job_id: str,
    spec: JobSpec,
    request: Request | None = None,
    webhook_url: str | None = None,
    can_defer: bool = True,
    fresh: bool = False,
    client_id: str | None = None,
    prepare: Prepare | None = None,
) -> JobRecord:
    """Admit, record, then start the job's workflow. Submitting the same id again is
    safe: it returns the existing job (and neither counts nor restarts anything).
    ``fresh``: the id was just made up here (job_ids.new_job_id without the client's id or
    Idempotency-Key), so no job can have it yet and looking it up is skipped.
    ``client_id``: the client's own id, from which ``job_id`` was derived.

    A new job passes, in order: the feature's rollout, moderation, the rate limits and
    admission (queued, deferred, or refused); each refusal is a 4xx, never a 5xx. Only
    then does ``prepare`` run (the costly part of a request, such as decoding uploads),
    so that a refused request costs next to nothing; and only then is the job recorded."""
    job = None if fresh else await _existing(services, account, job_id, client_id)
    created = False
    if job is None:
        # Rollout first: an account without the feature is told so whatever it asks, and
        # its requests count against no limit (refusal_replay.py answers it early).
        check_feature(services, account, spec)
        await gates.check_moderation(services, account, spec)  # before it costs anything
        admitted = await admit(services, account, spec, request, can_defer)
        if prepare is not None:
            spec = await prepare(spec)
        job, created = await _record(
            services, account, job_id, spec, admitted, webhook_url, client_id
        )
    _check_same(job, account, client_id or job_id, spec, created)
    if not job.is_terminal:
        await _start(services, account, job, created)
    return job


def _check_same(job: JobRecord, account: Account, shown: str, spec: JobSpec, created: bool) -> None:
    """A 409 unless ``job`` is the account's and was made by this very request
    (``shown``: the id as the client gave it)."""
    if job.account_id != account.id:  # a derived id cannot meet another account's
        raise APIError(409, f"The job id '{shown}' is already taken.", param="id", code="conflict")
    if not created and not _same_request(job.spec, spec):
        raise APIError(
            409,
            f"The job id '{job.public_id}' was already used for a different request.",
            param="id",
            code="conflict",
        )


async def _start(services: Services, account: Account, job: JobRecord, created: bool) -> None:
    """Start the job's workflow; also for an existing job, as the first submit may have
    died before it. A 503 if the engine cannot be reached, and a job recorded by this
    request is then forgotten: never acknowledged, so never owed."""
    try:
        await start_workflow(services.workflows, job, services.controls.tier(account.tier))
    except EngineUnavailable as err:
        if created:
            await run_blocking(services.store.jobs.discard, job.id)
        raise engine_unavailable() from err


async def _existing(
    services: Services, account: Account, job_id: str, client_id: str | None
) -> JobRecord | None:
    jobs = services.store.jobs
    if client_id is not None:
        # By the client's id within the account: finds the rows made before ids were
        # per account too (whose row id is the client's id).
        return await run_blocking(jobs.find, account.id, client_id)
    return await run_blocking(jobs.get, job_id)


def _same_request(recorded: JobSpec, asked: JobSpec) -> bool:
    """Whether ``asked`` is the request that made ``recorded``; the render settings the
    tier filled in (or degraded mode reduced) are not the client's to repeat. An edit is
    compared as sent (its uploads are decoded into the recorded spec only once admitted)."""
    if asked.request_digest is not None or recorded.request_digest is not None:
        return asked.request_digest == recorded.request_digest
    filled = dataclasses.replace(
        asked,
        steps=recorded.steps,
        partial_images=recorded.partial_images,
        quality=recorded.quality,
    )
    return filled == recorded


async def admit(
    services: Services,
    account: Account,
    spec: JobSpec,
    request: Request | None = None,
    can_defer: bool = True,
) -> Admitted:
    """The cheap checks a new job passes before anything is decoded, stored or
    recorded: the rate limits and admission. A 4xx if refused."""
    pool = services.settings.pool_for_product(account.product)
    tier = services.controls.tier(account.tier)
    metrics = services.metrics
    try:
        headers = await gates.check_rate_limits(services, account, tier, spec.n)
        if request is not None:  # OpenAI sends x-ratelimit-* on every answer
            request.state.ratelimit_headers = headers
            _forget(services, request)  # counts moved: a remembered refusal is stale
        admission = services.admission
        if admission.fresh(pool):  # cached counts: no thread hop for a few lookups
            decision = admission.decide(account.tier, pool, can_defer)
        else:
            decision = await run_blocking(admission.decide, account.tier, pool, can_defer)
    except APIError as err:
        metrics.rejected.labels(account.tier, pool, err.code or "refused").inc()
        if isinstance(err, gates.RateLimited) and request is not None:
            _remember(services, request, account, tier, err)
        raise
    return Admitted(pool, tier, decision)


def check_feature(services: Services, account: Account, spec: JobSpec) -> None:
    """A 403 (counted) unless the account has the job's feature (its rollout)."""
    feature = "edit" if spec.is_edit else "generate"
    refusal = gates.rollout_refusal(services, account, feature)
    if refusal is not None:
        pool = services.settings.pool_for_product(account.product)
        services.metrics.rejected.labels(account.tier, pool, refusal.code or "refused").inc()
        raise refusal


def _remember(
    services: Services,
    request: Request,
    account: Account,
    tier: TierSettings,
    err: gates.RateLimited,
) -> None:
    """Remember a spent window, so that the key's next requests are refused before they
    are parsed (refusal_replay.py) until it resets."""
    key_hash = getattr(request.state, "key_hash", None)
    refusal = remembered(account.tier, (tier.requests, tier.images), err.check)
    if key_hash is not None and refusal is not None:
        services.refusals.put(key_hash, refusal)


def _forget(services: Services, request: Request) -> None:
    key_hash = getattr(request.state, "key_hash", None)
    if key_hash is not None:
        services.refusals.forget(key_hash)


async def _record(
    services: Services,
    account: Account,
    job_id: str,
    spec: JobSpec,
    admitted: Admitted,
    webhook_url: str | None,
    client_id: str | None,
) -> tuple[JobRecord, bool]:
    pool, decision, metrics = admitted.pool, admitted.decision, services.metrics
    spec = apply_tier(spec, admitted.tier, decision.degraded)
    job, created = await run_blocking(
        functools.partial(
            services.store.jobs.create,
            job_id,
            account.id,
            pool,
            spec,
            tier=account.tier,
            priority=decision.priority,
            degraded=decision.degraded,
            status=decision.status,
            webhook_url=webhook_url,
            client_id=client_id,
        )
    )
    if created:
        counter = metrics.deferred if decision.status is JobStatus.DEFERRED else metrics.admitted
        counter.labels(account.tier, pool).inc()
        if decision.degraded:
            metrics.degraded_jobs.labels(account.tier, pool).inc()
    return job, created


async def owned_job(services: Services, account: Account, job_id: str) -> JobRecord:
    """``account``'s job that it calls ``job_id`` (its own id for it, or the row's);
    otherwise the same 404 as a missing one, whoever else's it may be."""
    job = await run_blocking(services.store.jobs.find, account.id, job_id)
    if job is None:
        raise not_found(f"No job found with id '{job_id}'.")
    return job


async def cancel(services: Services, account: Account, job_id: str) -> JobRecord:
    job = await owned_job(services, account, job_id)
    if job.status is JobStatus.CANCELLED:
        return job
    if job.is_terminal:
        raise APIError(
            409,
            f"Job '{job_id}' already {job.status.value}; there is nothing to cancel.",
            code="job_finished",
        )
    try:
        await services.workflows.cancel(job.id)
    except EngineUnavailable as err:
        raise engine_unavailable("retry the cancel") from err
    # The workflow marks the job too, but the caller deserves the answer now.
    await run_blocking(services.store.jobs.cancel, job.id, "cancelled by its owner")
    return await owned_job(services, account, job_id)


def image_url(services: Services, base_url: str, image: ImageRecord) -> str:
    exp, sig = services.signer.sign(image.id)
    base = (services.settings.public_url or base_url).rstrip("/")
    return f"{base}/v1/images/files/{image.id}?exp={exp}&sig={sig}"


def _estimate(services: Services, job: JobRecord) -> tuple[int | None, float | None]:
    """(waiting jobs ahead, seconds until this one starts), for a waiting job only."""
    if job.status not in WAITING_STATUSES:
        return None, None
    ahead = services.store.queue_stats.queue_position(job)
    if ahead == 0:
        return 0, 0.0
    rate = services.admission.throughput(job.pool)
    return ahead, (round(ahead / rate, 1) if rate else None)


async def describe(services: Services, job: JobRecord, base_url: str) -> JobPublic:
    position, wait = await run_blocking(_estimate, services, job)
    spec = job.spec
    return JobPublic(
        id=job.public_id,
        status=job.status.value,
        created_at=int(job.created_at),
        model=spec.model,
        prompt=spec.prompt,
        n=spec.n,
        size=f"{spec.width}x{spec.height}",
        output_format=spec.output_format,
        queue_position=position,
        estimated_wait_s=wait,
        step=job.step,
        total_steps=job.total_steps,
        resumed_from_step=job.resumed_from_step,
        attempts=job.attempts,
        preemptions=job.preemptions,
        error=job.error,
        error_code=job.error_code,
        started_at=job.started_at,
        finished_at=job.finished_at,
        tier=job.tier,
        degraded=job.degraded,
        expired_at=job.expired_at,
        images=[
            ImagePublic(
                id=image.id,
                url=image_url(services, base_url, image),
                media_type=image.media_type,
                width=image.width,
                height=image.height,
                revised_prompt=image.revised_prompt,
            )
            for image in job.images
        ],
        events_url=f"{base_url.rstrip('/')}/v1/jobs/{job.public_id}/events",
    )
