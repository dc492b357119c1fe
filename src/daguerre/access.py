"""Who may do what, how much and how soon: tiers and feature flags as data.

They come from a TOML file (``DAGUERRE_TIERS_FILE``; the package ships ``tiers.toml``)
and may be overridden live by an operator (see ``gateway/controls.py``), so everything
here is a plain pydantic model that can be merged with a partial update.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from limits import parse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from daguerre import priority as priorities

SHIPPED_TIERS_FILE = Path(__file__).with_name("tiers.toml")


def _limit(value: str) -> str:
    try:
        parse(value)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a rate limit such as '60/minute'") from err
    return value


class RenderDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(default=None, ge=1, le=1000)
    partial_images: int = Field(default=3, ge=0, le=3)
    quality: str | None = None


class TierSettings(RenderDefaults):
    priority: int = Field(default=priorities.DEFAULT, ge=priorities.HIGHEST, le=priorities.LOWEST)
    fairness_weight: float = Field(default=1.0, gt=0, le=1000)
    requests: str = "60/minute"
    images: str = "60/minute"
    wait_budget_s: float = Field(default=60.0, ge=0)
    over_budget: Literal["defer", "reject"] = "reject"
    admit_past_cap: bool = True
    degraded: RenderDefaults | None = None

    _check_requests = field_validator("requests", "images")(_limit)


class FeatureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # False: the kill switch, off for everyone
    tiers: list[str] = Field(default_factory=lambda: ["free", "plus", "pro"])
    percent: float = Field(default=100.0, ge=0, le=100)


class AccessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: dict[str, TierSettings]
    features: dict[str, FeatureSettings] = Field(default_factory=dict)


def load_access(path: Path | None) -> AccessConfig:
    with (path or SHIPPED_TIERS_FILE).open("rb") as f:
        return AccessConfig.model_validate(tomllib.load(f))


M = TypeVar("M", bound=BaseModel)


def merged(base: M, changes: dict[str, Any]) -> M:
    """``base`` with ``changes`` applied, validated again (a bad change raises)."""
    return type(base).model_validate({**base.model_dump(), **changes})


def rollout_bucket(feature: str, account_id: str) -> float:
    """Where an account falls in a feature's rollout, 0 <= x < 100. Stable: it depends only
    on the two names, so raising the percentage keeps everyone already in."""
    digest = hashlib.sha256(f"{feature}\n{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def feature_allows(feature: str, flag: FeatureSettings, tier: str, account_id: str) -> bool:
    return (
        flag.enabled and tier in flag.tiers and rollout_bucket(feature, account_id) < flag.percent
    )
