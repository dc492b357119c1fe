"""The two per-account gates before admission: rate limits and feature rollout.
Each refuses with a 4xx in OpenAI's error shape that says what to do next."""

from __future__ import annotations

import anyio

from daguerre.access import TierSettings, feature_allows
from daguerre.domain import Account
from daguerre.gateway.errors import APIError
from daguerre.gateway.services import Services

FEATURE_NAMES = {"generate": "Image generation", "edit": "Image editing"}


async def check_rate_limits(
    services: Services, account: Account, tier: TierSettings, images: int
) -> dict[str, str]:
    """Count the request; its x-ratelimit-* headers, or a 429 carrying them."""
    limiter = services.limiter
    if limiter.in_memory:
        check = limiter.check(account.id, tier, images)
    else:
        check = await anyio.to_thread.run_sync(limiter.check, account.id, tier, images)
    headers = check.headers()
    if check.allowed:
        return headers
    headers["Retry-After"] = str(check.retry_after_s)
    if check.exceeded == "images":
        window, what = check.images, f"images per window ({tier.images})"
    else:
        window, what = check.requests, f"requests per window ({tier.requests})"
    raise APIError(
        429,
        f"Rate limit reached for {what} on plan {account.tier}: limit {window.limit}, "
        f"remaining {window.remaining}, {images} asked. Please try again in "
        f"{check.retry_after_s}s.",
        code="rate_limit_exceeded",
        type="requests",
        headers=headers,
    )


def check_rollout(services: Services, account: Account, feature: str) -> None:
    flag = services.controls.feature(feature)
    if flag is None or feature_allows(feature, flag, account.tier, account.id):
        return
    label = FEATURE_NAMES.get(feature, feature)
    if not flag.enabled:
        raise APIError(
            403,
            f"{label} is switched off for the moment. Please try again later.",
            code="feature_disabled",
        )
    raise APIError(
        403,
        f"{label} is not yet available on your plan ({account.tier}). It is being "
        "rolled out gradually; it will reach your account without any change on your side.",
        code="feature_not_available",
    )
