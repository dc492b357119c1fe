"""The operators' API: change tiers' limits, feature flags, degraded mode and the
admission pace while the service runs. Changes go to the database, which every gateway
re-reads every second. API keys have their own routes (routes/admin_keys.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daguerre.access import FeatureSettings, RenderDefaults, TierSettings, merged
from daguerre.gateway.access.controls import degraded_key, feature_key, pace_key, tier_key
from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.gateway.api.errors import APIError, bad_request, not_found
from daguerre.gateway.api.routes import admin_keys, admin_moderation, admin_workers
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/admin", tags=["admin"])
router.include_router(admin_keys.router)  # /admin/keys: the API key lifecycle
router.include_router(admin_workers.router)  # /admin/workers: the live workers per pool
router.include_router(admin_moderation.router)  # /admin/moderation: refused prompts


class TierUpdate(BaseModel):
    """Some of a tier's fields (see TierSettings); the rest keep their value. The tier
    that results is checked whole before anything is stored."""

    model_config = ConfigDict(extra="forbid")

    priority: int | None = None
    fairness_weight: float | None = None
    requests: str | None = Field(default=None, examples=["10/minute"])
    images: str | None = Field(default=None, examples=["20/minute"])
    wait_budget_s: float | None = None
    over_budget: Literal["defer", "reject"] | None = None
    admit_past_cap: bool | None = None
    steps: int | None = None
    partial_images: int | None = None
    quality: str | None = None
    degraded: RenderDefaults | None = None
    # null: keep the tier's images until deleted.
    retention_days: float | None = None
    moderation: Literal["standard", "strict"] | None = None


class FeatureUpdate(BaseModel):
    """Some of a feature flag's fields (see FeatureSettings)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    tiers: list[str] | None = None
    percent: float | None = None


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


async def _change(
    services: Services, key: str, base: TierSettings | FeatureSettings, changes: dict[str, Any]
) -> None:
    """Add ``changes`` to the stored override for ``key``, after checking the result."""
    stored = dict(services.controls.overrides.get(key) or {})
    stored.update(changes)
    try:
        merged(base, stored)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise bad_request(f"Invalid value for '{field}': {message}.", param=field) from None
    await _put(services, key, stored)


async def _put(services: Services, key: str, value: Any) -> None:
    await run_blocking(services.store.controls.put, key, value)
    await run_blocking(services.controls.refresh)


async def _reset(services: Services, key: str) -> None:
    await run_blocking(services.store.controls.delete, key)
    await run_blocking(services.controls.refresh)


@router.get("/access")
async def show_access(_: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """The tiers and flags in force (configuration plus overrides), and the overrides."""
    await run_blocking(services.controls.refresh)
    return {
        **services.controls.access.model_dump(),
        "overrides": services.controls.overrides,
    }


@router.patch("/tiers/{name}")
async def update_tier(
    name: str, changes: TierUpdate, _: AdminDep, services: ServicesDep
) -> TierSettings:
    """Change some of a tier's fields, e.g. ``{"requests": "10/minute"}``."""
    base = services.settings.tiers.get(name, TierSettings())
    await _change(services, tier_key(name), base, changes.model_dump(exclude_unset=True))
    return services.controls.tier(name)


@router.delete("/tiers/{name}")
async def reset_tier(name: str, _: AdminDep, services: ServicesDep) -> TierSettings:
    """Drop a tier's overrides: back to the configuration file."""
    await _reset(services, tier_key(name))
    return services.controls.tier(name)


@router.patch("/features/{name}")
async def update_feature(
    name: str, changes: FeatureUpdate, _: AdminDep, services: ServicesDep
) -> FeatureSettings:
    """Change a flag, e.g. ``{"percent": 25}``, ``{"tiers": ["pro"]}``, ``{"enabled": false}``."""
    assert services.settings.access is not None
    base = services.settings.access.features.get(name, FeatureSettings())
    await _change(services, feature_key(name), base, changes.model_dump(exclude_unset=True))
    flag = services.controls.feature(name)
    assert flag is not None
    return flag


@router.delete("/features/{name}")
async def reset_feature(name: str, _: AdminDep, services: ServicesDep) -> FeatureSettings | None:
    await _reset(services, feature_key(name))
    return services.controls.feature(name)


async def _pool_state(services: Services, pool: str) -> PoolPublic:
    def read() -> PoolPublic:
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

    return await run_blocking(read)


@router.get("/pools")
async def show_pools(_: AdminDep, services: ServicesDep) -> list[PoolPublic]:
    return [await _pool_state(services, pool) for pool in services.settings.pools]


@router.put("/pools/{pool}/degraded")
async def set_degraded(
    pool: str, body: DegradedUpdate, _: AdminDep, services: ServicesDep
) -> PoolPublic:
    """Force degraded mode ``on`` or ``off`` for a pool, or give it back to ``auto``."""
    if pool not in services.settings.pools:
        raise _unknown_pool(services, pool)
    if body.mode == "auto":
        await _reset(services, degraded_key(pool))
    else:
        await _put(services, degraded_key(pool), body.mode)
    return await _pool_state(services, pool)


@router.put("/pools/{pool}/pace")
async def set_pace(pool: str, body: PaceUpdate, _: AdminDep, services: ServicesDep) -> PoolPublic:
    """Admit tiers without ``admit_past_cap`` at most ``pace`` times the pool's
    throughput (0: no pace), or ``null``: back to the configured pace."""
    if pool not in services.settings.pools:
        raise _unknown_pool(services, pool)
    if body.pace is None:
        await _reset(services, pace_key(pool))
    else:
        await _put(services, pace_key(pool), body.pace)
    return await _pool_state(services, pool)
