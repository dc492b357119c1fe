"""Who may do what, how much and how soon: tiers and feature flags as data.

They come from a TOML file (``DAGUERRE_TIERS_FILE``; the package ships ``tiers.toml``)
and may be overridden live by an operator (see ``gateway/access/controls.py``), so everything
here is a plain pydantic model that can be merged with a partial update.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

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

    steps: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Render steps when a request names none (under `degraded`, also the "
        "most it gets). None: the model's own default.",
    )
    partial_images: int = Field(
        default=3,
        ge=0,
        le=3,
        description="Partial (preview) images a streamed request gets, at most: the default "
        "and the ceiling.",
    )
    quality: str | None = Field(
        default=None, description="The quality when a request names none. None: the model's."
    )


class TierSettings(RenderDefaults):
    priority: int = Field(
        default=priorities.DEFAULT,
        ge=priorities.HIGHEST,
        le=priorities.LOWEST,
        description="Temporal priority key, 1 (first) .. 5 (last); 5 is kept for deferred work.",
    )
    fairness_weight: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="An account's share of its priority level (accounts are fairness keys).",
    )
    requests: str = Field(
        default="60/minute", description='Requests per account, per window (e.g. "60/minute").'
    )
    images: str = Field(default="60/minute", description="Images per account, per window.")
    wait_budget_s: float = Field(
        default=60.0,
        ge=0,
        description="The longest estimated queue wait a request is admitted with.",
    )
    over_budget: Literal["defer", "reject"] = Field(
        default="reject",
        description='Past the wait budget: "defer" (accept now, run when capacity frees) or '
        '"reject" (429).',
    )
    admit_past_cap: bool = Field(
        default=True,
        description="Admitted even when the pool's backlog is at its hard cap (max_backlog), "
        "and not held to the pool's admit_pace.",
    )
    degraded: RenderDefaults | None = Field(
        default=None,
        description="What the tier gets instead (steps, partial_images, quality) while its "
        "pool is degraded. None: the same as always.",
    )
    # Deleting people's pictures is never a default surprise: the shipped tiers file sets
    # it for the free tier only, where an operator expects the cost to be bounded.
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="How long the tier's images, uploads and previews are kept after their "
        "job ends; the retention sweep then deletes them (the job stays, marked expired, and "
        "its images answer 410). None: kept until deleted.",
    )

    moderation: Literal["standard", "strict"] = Field(
        default="standard",
        description="Prompt moderation: `standard` refuses severe and sensitive terms, and a "
        "request's `moderation: low` relaxes it to severe ones only; `strict` ignores "
        "`low`.",
    )

    _check_requests = field_validator("requests", "images")(_limit)


class FeatureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="False: the kill switch, off for everyone.")
    tiers: list[str] = Field(
        default_factory=lambda: ["free", "plus", "pro"], description="The tiers that may use it."
    )
    # A stable hash of the account id: raising the percentage only adds accounts.
    percent: float = Field(
        default=100.0, ge=0, le=100, description="The share of those tiers' accounts that may."
    )
    # Free users rolled in step by step while paying ones keep the feature: one flag's
    # share per tier, e.g. {"free": 10} (the tiers not named keep ``percent``).
    tier_percent: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=dict,
        description="Shares for some tiers (0..100) in place of `percent`, e.g. "
        '`{"free": 10}` rolls free accounts in at 10% while the other tiers keep `percent`.',
    )

    def percent_for(self, tier: str) -> float:
        """The share of ``tier``'s accounts that may use the feature."""
        return self.tier_percent.get(tier, self.percent)


class AccessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: dict[str, TierSettings]
    features: dict[str, FeatureSettings] = Field(default_factory=dict)

    def tier(self, name: str) -> TierSettings:
        """The one tier resolver: a tier's terms; an unknown tier gets the lowest-priority
        tier's terms (the highest priority number)."""
        return self.tiers.get(name) or max(self.tiers.values(), key=lambda t: t.priority)


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
        flag.enabled
        and tier in flag.tiers
        and rollout_bucket(feature, account_id) < flag.percent_for(tier)
    )
