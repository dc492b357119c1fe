"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from daguerre.gateway.api.deps import ServicesDep
from daguerre.gateway.context import Services
from daguerre.store.blobs import BlobStoreUnavailable
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """The database and Temporal both answer; 503 (naming which does not) otherwise.

    The blob store is reported too, and Redis with ``redis_url`` set ("ok" or
    "unavailable"), but neither decides readiness: without Redis, gateways still serve
    (rate limits by ``redis_outage``, progress by polling), so taking them out of a load
    balancer would only make it worse."""
    checks: dict[str, str] = {}
    try:
        await run_blocking(services.store.ping)
        checks["database"] = "ok"
    except Exception as err:  # any failure means "not ready", whatever its kind
        checks["database"] = f"unavailable: {type(err).__name__}"
    checks["temporal"] = "ok" if await services.workflows.ping() else "unavailable"
    ready = all(v == "ok" for v in checks.values())
    # Reported, not deciding: without the blob store, jobs are still accepted, rendered
    # and kept (workers retry their writes), and every gateway shares the one store, so
    # taking them all out of the load balancer would turn a partial outage into a full one.
    checks["blobs"] = await run_blocking(_blobs_check, services)
    if services.settings.redis_url:
        redis_ok = await run_blocking(services.limiter.ping)
        checks["redis"] = "ok" if redis_ok else "unavailable"
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


def _blobs_check(services: Services) -> str:
    """ "ok" if the blob store answers a lookup (a folder always does)."""
    try:
        services.store.blobs.exists("readyz/probe")
    except BlobStoreUnavailable as err:  # the detail names the bucket: for the log only
        log.warning("readiness: %s", err)
        return "unavailable"
    return "ok"
