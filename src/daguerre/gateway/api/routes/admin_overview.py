"""The operator page's one read (``GET /admin/overview``): everything it shows, refreshed
every few seconds, in one call.

- Each pool: its backlog by priority key, throughput, batch occupancy (from the worker
  registry: renders in the live workers' batches against their batch budgets) and
  degraded state, with the controls on it.
- Each tier: its limits as they are now, and what admission did with its requests: the
  429s *this gateway* answered since it started (its own counters, by reason: sum the
  replicas' ``daguerre_jobs_rejected`` for the fleet), and the jobs deferred recently and
  waiting now, read from the jobs table (every gateway's).
- Each feature flag: on or off, its tiers, its rollout percentage (and any tier's own).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from daguerre.gateway.access.controls import feature_key, tier_key
from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.gateway.api.routes.admin_pools import PoolPublic, read_pool
from daguerre.gateway.context import Services
from daguerre.store.tables import utcnow
from daguerre.store.threads import run_blocking
from daguerre.store.workers import staleness_s

router = APIRouter(prefix="/overview")

# The refusals admission answers 429 (rollout's are 403s, and not counted here).
REFUSED_429 = ("rate_limit_exceeded", "admission_paced", "capacity_exceeded", "queue_full")
DEFERRALS_WINDOW_S = 300.0


class PoolOverview(PoolPublic):
    backlog_by_priority: dict[str, int] = Field(
        description='Waiting jobs per priority key ("1" first .. "5": deferred work).'
    )
    workers: int = Field(description="Live workers of the pool.")
    batch_running: int = Field(description="Renders in the live workers' batches.")
    batch_images: int = Field(description="The live workers' batch budgets together.")
    batch_occupancy: float | None = Field(
        description="batch_running / batch_images; null without a live worker."
    )


class TierOverview(BaseModel):
    name: str
    priority: int
    requests: str
    images: str
    wait_budget_s: float
    over_budget: Literal["defer", "reject"]
    admit_past_cap: bool
    overridden: bool = Field(description="An operator's override is in force.")
    refused_429: dict[str, int] = Field(
        description="429s by reason, counted by this gateway since it started."
    )
    deferred_recent: int = Field(description="Jobs deferred in the last deferrals_window_s.")
    deferred_waiting: int = Field(description="Deferred jobs waiting now.")


class FeatureOverview(BaseModel):
    name: str
    enabled: bool
    tiers: list[str]
    percent: float
    tier_percent: dict[str, float] = Field(description="Tiers with a share of their own.")
    overridden: bool


class Overview(BaseModel):
    at: float = Field(description="Unix seconds: when this was read.")
    pools: list[PoolOverview]
    tiers: list[TierOverview]
    features: list[FeatureOverview]
    deferrals_window_s: float
    refusals_counted_by: Literal["this gateway"] = "this gateway"


def _pool(services: Services, pool: str) -> PoolOverview:
    state = read_pool(services, pool)
    waiting = services.store.queue_stats.backlog_by_priority(pool)
    max_age = staleness_s(services.settings.worker_report_s)
    workers = services.store.workers.live(pool, max_age)
    running = sum(w.running for w in workers)
    budget = sum(w.batch_images for w in workers)
    return PoolOverview(
        **state.model_dump(),
        backlog_by_priority={str(p) if p is not None else "none": n for p, n in waiting.items()},
        workers=len(workers),
        batch_running=running,
        batch_images=budget,
        batch_occupancy=round(running / budget, 3) if budget else None,
    )


def refusals_by_tier(services: Services) -> dict[str, dict[str, int]]:
    """This gateway's 429s so far, per tier and reason (summed over pools)."""
    counts: dict[str, dict[str, int]] = {}
    for family in services.metrics.rejected.collect():
        for sample in family.samples:
            reason = sample.labels.get("reason", "")
            if not sample.name.endswith("_total") or reason not in REFUSED_429:
                continue
            tier = counts.setdefault(sample.labels.get("tier", "unknown"), {})
            tier[reason] = tier.get(reason, 0) + int(sample.value)
    return counts


def _tiers(services: Services) -> list[TierOverview]:
    since = utcnow() - timedelta(seconds=DEFERRALS_WINDOW_S)
    deferrals = services.store.queue_stats.deferrals_by_tier(since)
    refusals = refusals_by_tier(services)
    tiers = services.controls.access.tiers
    return [
        TierOverview(
            name=name,
            priority=tier.priority,
            requests=tier.requests,
            images=tier.images,
            wait_budget_s=tier.wait_budget_s,
            over_budget=tier.over_budget,
            admit_past_cap=tier.admit_past_cap,
            overridden=tier_key(name) in services.controls.overrides,
            refused_429=refusals.get(name, {}),
            deferred_recent=deferrals.get(name, (0, 0))[0],
            deferred_waiting=deferrals.get(name, (0, 0))[1],
        )
        for name, tier in sorted(tiers.items(), key=lambda item: item[1].priority)
    ]


def _features(services: Services) -> list[FeatureOverview]:
    return [
        FeatureOverview(
            name=name,
            enabled=flag.enabled,
            tiers=flag.tiers,
            percent=flag.percent,
            tier_percent=flag.tier_percent,
            overridden=feature_key(name) in services.controls.overrides,
        )
        for name, flag in sorted(services.controls.access.features.items())
    ]


def read_overview(services: Services) -> Overview:
    """Everything the operator page shows (blocking: a few small queries)."""
    services.controls.refresh()  # a change made through another replica shows at once
    return Overview(
        at=time.time(),
        pools=[_pool(services, pool) for pool in services.settings.pools],
        tiers=_tiers(services),
        features=_features(services),
        deferrals_window_s=DEFERRALS_WINDOW_S,
    )


@router.get("")
async def show_overview(_: AdminDep, services: ServicesDep) -> Overview:
    return await run_blocking(read_overview, services)
