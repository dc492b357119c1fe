"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from daguerre.gateway.api.deps import ServicesDep
from daguerre.store.threads import run_blocking

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """The database and Temporal both answer; 503 (naming which does not) otherwise.

    With ``redis_url`` set, Redis is reported too ("ok" or "unavailable") but does not
    decide readiness: without it, gateways still serve (rate limits by ``redis_outage``,
    progress by polling), so taking them out of a load balancer would only make it worse."""
    checks: dict[str, str] = {}
    try:
        await run_blocking(services.store.ping)
        checks["database"] = "ok"
    except Exception as err:  # any failure means "not ready", whatever its kind
        checks["database"] = f"unavailable: {type(err).__name__}"
    checks["temporal"] = "ok" if await services.workflows.ping() else "unavailable"
    ready = all(v == "ok" for v in checks.values())
    if services.settings.redis_url:
        redis_ok = await run_blocking(services.limiter.ping)
        checks["redis"] = "ok" if redis_ok else "unavailable"
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
