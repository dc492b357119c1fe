"""The settings sections for who gets what: pools and products, access (tiers, keys,
limits) and webhooks.

Like the sections of runtime.py, each is a mixin of `Settings` whose fields stay flat
(``DAGUERRE_<NAME>``, ``settings.<name>``) and carry their documentation as ``description``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from limits import parse as parse_limit
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from daguerre.access import AccessConfig
from daguerre.config.pools import PoolSettings, default_pools


class PoolsSection(BaseModel):
    """Pools and products: the slices of compute, and which product uses which."""

    pools: dict[str, PoolSettings] = Field(
        default_factory=default_pools,
        description="The pools by name, as JSON (see the pool settings below). At least one.",
    )
    product_pools: dict[str, str] = Field(
        default_factory=lambda: {"chat": "chat", "api": "api"},
        description="The pool serving each product; an unknown product shares the first pool.",
    )


class AccessSection(BaseModel):
    """Access: tiers, keys and the limits that are not a tier's."""

    tiers_file: Path | None = Field(
        default=None,
        description="The tiers and feature flags, a TOML file (see the tiers file below). "
        "None: the shipped daguerre/tiers.toml. Operators override them live through /admin.",
    )
    access: AccessConfig | None = Field(
        default=None,
        description="The tiers and feature flags as JSON of the tiers file's shape, instead "
        "of tiers_file.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="The key for /admin and `daguerre admin`; API keys with the admin scope "
        "(`daguerre keys create --admin`) may use those too.",
    )
    metrics_auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Whether GET /metrics needs a bearer key (metrics_key, admin_key or an "
        'admin API key). "auto": on unless the gateway\'s host is a loopback address.',
    )
    metrics_key: SecretStr | None = Field(
        default=None, description="A key for Prometheus alone: it can read /metrics, nothing else."
    )
    admission_cache_s: float = Field(
        default=0.25,
        ge=0,
        description="How old the pool backlog that admission decides on may be (one grouped "
        "count per pool per period, plus the jobs this gateway admitted since). 0: count "
        "every time.",
    )
    auth_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a gateway trusts an API key's account (and tier) once read: a "
        "tier change reaches it within this time. 0: read the database for every request.",
    )
    replay_refusals: bool = Field(
        default=True,
        description="Answer the refusals a flood is made of before the request is parsed, "
        "with the same 4xx: a key whose rate limit is spent (until its window resets) and "
        "an account the feature is not rolled out to; each then costs the gateway a "
        "fraction of a full request. Only for a key whose grant is cached (auth_cache_s). "
        "See docs/operations.md.",
    )
    max_streams_per_account: int = Field(
        default=16,
        ge=0,
        description="Server-Sent Event streams one account may hold open on one gateway at "
        "once; past it a new one is a 429 (too_many_streams). 0: no cap.",
    )
    read_rate_limit: str | None = Field(
        default="600/minute",
        description="Per account, the requests that start no job (reads, cancels, "
        "conversation writes), counted like the tiers' limits (memory, or Redis with "
        "redis_url). None or empty: no limit.",
    )
    controls_refresh_s: float = Field(
        default=1.0,
        gt=0,
        description="How often a gateway reads the operators' live overrides from the database.",
    )

    @field_validator("read_rate_limit")
    @classmethod
    def _read_limit(cls, value: str | None) -> str | None:
        if value is None or not value.strip() or value.strip().lower() == "none":
            return None  # DAGUERRE_READ_RATE_LIMIT= (empty) switches it off
        try:
            parse_limit(value)
        except ValueError as err:
            raise ValueError(f"{value!r} is not a rate limit such as '600/minute'") from err
        return value


class WebhooksSection(BaseModel):
    """Webhooks: signing and delivery (workers/webhooks.py, webhook_guard.py)."""

    # Each account now signs with its own secret (GET /v1/webhooks/secret); this one keeps
    # existing receivers working while they move over.
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The server-wide signing secret of older deployments: it signs for "
        "accounts with no secret of their own yet, and beside an account's first own secret "
        "for webhook_secret_grace_s. None: not used.",
    )
    webhook_secret_grace_s: float = Field(
        default=86_400.0,
        ge=0,
        description="How long a rotated-out account secret (or the server's, beside an "
        "account's first own one) still signs, beside the new one.",
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Destinations webhooks may reach although they are not public addresses: "
        'host names and CIDR blocks, comma separated (e.g. "hooks.internal,10.1.0.0/16") or '
        "a JSON list. Empty: the public internet only.",
    )
    # A Temporal worker of their own, so deliveries never hold up a job's bookkeeping.
    webhook_concurrency: int = Field(
        default=16, ge=1, description="Deliveries one worker process runs at once."
    )
    webhook_max_per_destination: int = Field(
        default=4,
        ge=1,
        description="Deliveries one worker process runs at once to one destination.",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=25,
        description="The longest one delivery may take, all told (connecting takes at most 3 s).",
    )
    webhook_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="After this many consecutive failures a destination is not called for "
        "webhook_cooloff_s (its deliveries wait, and retry after it).",
    )
    webhook_cooloff_s: float = Field(
        default=60.0, ge=0, description="How long a failing destination rests."
    )

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        # From the environment: a JSON list, or comma separated.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
