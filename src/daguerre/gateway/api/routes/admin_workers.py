"""The operators' view of the workers (``GET /admin/workers``): every live worker
process of every pool, on whatever host, as it last reported itself to the worker
registry (store/workers.py), and each pool's totals: what admission reads as capacity
(gateway/access/capacity.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.store.threads import run_blocking
from daguerre.store.workers import WorkerReport, staleness_s

router = APIRouter(prefix="/workers")


class WorkerPublic(BaseModel):
    id: str = Field(description="host:pid:random, unique per process start.")
    host: str
    pid: int
    slots: int = Field(description="Renders it takes at once per job queue.")
    batch_images: int = Field(description="Images its engine steps together at most.")
    running: int = Field(description="Renders in its engine's batch at its last report.")
    step_s: float | None = Field(description="Seconds per batched step, measured.")
    images_per_s: float | None = Field(description="Its measured pace; null before a render.")
    started_at: datetime | None
    updated_at: datetime | None = Field(description="Its last report.")


class PoolWorkers(BaseModel):
    pool: str
    workers: list[WorkerPublic]
    slots: int = Field(description="The live workers' slots together.")
    batch_images: int = Field(description="The live workers' batch budgets together.")
    images_per_s: float | None = Field(description="Their measured paces together.")


def _public(worker: WorkerReport) -> WorkerPublic:
    return WorkerPublic(
        id=worker.id,
        host=worker.host,
        pid=worker.pid,
        slots=worker.slots,
        batch_images=worker.batch_images,
        running=worker.running,
        step_s=worker.step_s,
        images_per_s=worker.images_per_s,
        started_at=worker.started_at,
        updated_at=worker.updated_at,
    )


def _pool(pool: str, workers: list[WorkerReport]) -> PoolWorkers:
    paces = [w.images_per_s for w in workers if w.images_per_s is not None]
    return PoolWorkers(
        pool=pool,
        workers=[_public(w) for w in workers],
        slots=sum(w.slots for w in workers),
        batch_images=sum(w.batch_images for w in workers),
        images_per_s=round(sum(paces), 4) if paces else None,
    )


@router.get("")
async def show_workers(_: AdminDep, services: ServicesDep) -> list[PoolWorkers]:
    """The live workers of each pool (those that reported within three report
    intervals), configured pools first, then any other pool a worker reports for."""
    max_age = staleness_s(services.settings.worker_report_s)
    live = await run_blocking(services.store.workers.live, None, max_age)
    pools = list(services.settings.pools)
    pools += sorted({w.pool for w in live} - set(pools))
    return [_pool(pool, [w for w in live if w.pool == pool]) for pool in pools]
