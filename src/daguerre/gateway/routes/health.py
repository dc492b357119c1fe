"""Liveness and readiness probes."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from daguerre.gateway.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """The database and Temporal both answer; 503 (naming which does not) otherwise."""
    checks: dict[str, str] = {}
    try:
        await anyio.to_thread.run_sync(services.store.ping)
        checks["database"] = "ok"
    except Exception as err:  # any failure means "not ready", whatever its kind
        checks["database"] = f"unavailable: {type(err).__name__}"
    checks["temporal"] = "ok" if await services.engine.ping() else "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
