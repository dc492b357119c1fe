"""The operators' API for pools (``/admin/pools``): each pool's backlog, throughput and
degraded state, and the two controls on it: degraded mode and the admission pace.
Changes go to the database, which every gateway re-reads every second."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from daguerre.gateway.access.controls import degraded_key, pace_key
from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.gateway.api.errors import APIError, not_found
from daguerre.gateway.api.routes.admin_audit import OperatorDep
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/pools")


class DegradedUpdate(BaseModel):
    mode: Literal["auto", "on", "off"]


class PaceUpdate(BaseModel):
    # Times the pool's throughput per second; 0 switches the pace off, null goes back
    # to the configured pace.
    pace: float | None = Field(ge=0, le=1000)


class PoolPublic(BaseModel):
    """A pool as operators see it: its backlog and throughput, and the controls on it."""

    pool: str
    backlog: int
    running: int
    throughput_per_s: float | None = Field(description="Jobs finished per second, recently.")
    degraded: bool = Field(description="Whether new jobs get the tiers' degraded settings now.")
    degraded_mode: str = Field(description='"auto" (by backlog), "on" or "off".')
    degrade_backlog: int
    max_backlog: int
    admit_pace: float


def _unknown_pool(services: Services, pool: str) -> APIError:
    known = ", ".join(services.settings.pools)
    return not_found(f"No pool named '{pool}'. Pools: {known}.")


def read_pool(services: Services, pool: str) -> PoolPublic:
    """The pool's state now (blocking: it counts jobs)."""
    stats, admission = services.store.queue_stats, services.admission
    backlog = stats.backlog(pool)
    rate = admission.throughput(pool)
    return PoolPublic(
        pool=pool,
        backlog=backlog,
        running=stats.running_count(pool),
        throughput_per_s=round(rate, 3) if rate else None,
        degraded=admission.is_degraded(pool, backlog),
        degraded_mode=services.controls.degraded_mode(pool),
        degrade_backlog=services.settings.pools[pool].degrade_backlog,
        max_backlog=services.settings.pools[pool].max_backlog,
        admit_pace=services.controls.admit_pace(pool),
    )


@router.get("")
async def show_pools(_: AdminDep, services: ServicesDep) -> list[PoolPublic]:
    return [await run_blocking(read_pool, services, pool) for pool in services.settings.pools]


@router.put("/{pool}/degraded")
async def set_degraded(
    pool: str, body: DegradedUpdate, operator: OperatorDep, services: ServicesDep
) -> PoolPublic:
    """Force degraded mode ``on`` or ``off`` for a pool, or give it back to ``auto``."""
    if pool not in services.settings.pools:
        raise _unknown_pool(services, pool)
    if body.mode == "auto":
        await run_blocking(services.controls.reset, degraded_key(pool))
    else:
        await run_blocking(services.controls.put, degraded_key(pool), body.mode)
    await operator.record(body.model_dump())
    return await run_blocking(read_pool, services, pool)


@router.put("/{pool}/pace")
async def set_pace(
    pool: str, body: PaceUpdate, operator: OperatorDep, services: ServicesDep
) -> PoolPublic:
    """Admit tiers without ``admit_past_cap`` at most ``pace`` times the pool's
    throughput (0: no pace), or ``null``: back to the configured pace."""
    if pool not in services.settings.pools:
        raise _unknown_pool(services, pool)
    if body.pace is None:
        await run_blocking(services.controls.reset, pace_key(pool))
    else:
        await run_blocking(services.controls.put, pace_key(pool), body.pace)
    await operator.record(body.model_dump())
    return await run_blocking(read_pool, services, pool)
