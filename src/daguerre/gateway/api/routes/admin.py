"""The operators' API: change tiers' limits and feature flags while the service runs.
Changes go to the database, which every gateway re-reads every second, and to the audit
log (routes/admin_audit.py). Pools (degraded mode, the admission pace) and API keys have
their own routes, and the operator page its one read (routes/admin_overview.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daguerre.access import FeatureSettings, RenderDefaults, TierSettings, merged
from daguerre.gateway.access.controls import feature_key, tier_key
from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.gateway.api.errors import bad_request
from daguerre.gateway.api.routes import (
    admin_audit,
    admin_keys,
    admin_moderation,
    admin_overview,
    admin_pools,
    admin_workers,
)
from daguerre.gateway.api.routes.admin_audit import OperatorDep
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/admin", tags=["admin"])
router.include_router(admin_keys.router)  # /admin/keys: the API key lifecycle
router.include_router(admin_workers.router)  # /admin/workers: the live workers per pool
router.include_router(admin_moderation.router)  # /admin/moderation: refused prompts
router.include_router(admin_pools.router)  # /admin/pools: backlog, degraded mode, pace
router.include_router(admin_audit.router)  # /admin/audit: the operators' changes
router.include_router(admin_overview.router)  # /admin/overview: the operator page's read


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
    # Replaces the whole mapping: {} drops every tier's own share.
    tier_percent: dict[str, float] | None = Field(default=None, examples=[{"free": 10}])


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
    await run_blocking(services.controls.put, key, value)


async def _reset(services: Services, key: str) -> None:
    await run_blocking(services.controls.reset, key)


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
    name: str, changes: TierUpdate, operator: OperatorDep, services: ServicesDep
) -> TierSettings:
    """Change some of a tier's fields, e.g. ``{"requests": "10/minute"}``."""
    base = services.settings.tiers.get(name, TierSettings())
    sent = changes.model_dump(exclude_unset=True)
    await _change(services, tier_key(name), base, sent)
    await operator.record(sent)
    return services.controls.tier(name)


@router.delete("/tiers/{name}")
async def reset_tier(name: str, operator: OperatorDep, services: ServicesDep) -> TierSettings:
    """Drop a tier's overrides: back to the configuration file."""
    await _reset(services, tier_key(name))
    await operator.record()
    return services.controls.tier(name)


@router.patch("/features/{name}")
async def update_feature(
    name: str, changes: FeatureUpdate, operator: OperatorDep, services: ServicesDep
) -> FeatureSettings:
    """Change a flag, e.g. ``{"percent": 25}``, ``{"tiers": ["pro"]}``, ``{"enabled": false}``,
    ``{"tier_percent": {"free": 10}}`` (free accounts at 10%, the other tiers at ``percent``)."""
    assert services.settings.access is not None
    base = services.settings.access.features.get(name, FeatureSettings())
    sent = changes.model_dump(exclude_unset=True)
    await _change(services, feature_key(name), base, sent)
    await operator.record(sent)
    flag = services.controls.feature(name)
    assert flag is not None
    return flag


@router.delete("/features/{name}")
async def reset_feature(
    name: str, operator: OperatorDep, services: ServicesDep
) -> FeatureSettings | None:
    await _reset(services, feature_key(name))
    await operator.record()
    return services.controls.feature(name)
