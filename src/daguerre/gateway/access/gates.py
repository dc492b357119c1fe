"""The per-account gates: before admission, rate limits and feature rollout; for the
requests that start no job (reads, cancels, conversation writes), the read limit.
Each refuses with a 4xx in OpenAI's error shape that says what to do next."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Depends

from daguerre.access import TierSettings, feature_allows
from daguerre.domain import Account, JobSpec
from daguerre.gateway.access.moderation import ClassifierDown
from daguerre.gateway.access.ratelimit import LimitCheck
from daguerre.gateway.api.deps import OptionalAccountDep, ServicesDep
from daguerre.gateway.api.errors import APIError
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking

FEATURE_NAMES = {"generate": "Image generation", "edit": "Image editing"}


class RateLimited(APIError):
    """A 429 for a spent rate limit, with the counts behind it (refusals.py replays it)."""

    def __init__(self, account_tier: str, tier: TierSettings, check: LimitCheck, images: int):
        headers = check.headers()
        headers["Retry-After"] = str(check.retry_after_s)
        if check.exceeded == "unavailable":  # Redis is out and redis_outage is "closed"
            message = (
                "Rate limits cannot be counted for the moment, so requests are held back. "
                f"Please try again in {check.retry_after_s}s."
            )
        else:
            if check.exceeded == "images":
                window, what = check.images, f"images per window ({tier.images})"
            else:
                window, what = check.requests, f"requests per window ({tier.requests})"
            message = (
                f"Rate limit reached for {what} on plan {account_tier}: limit {window.limit}, "
                f"remaining {window.remaining}, {images} asked. Please try again in "
                f"{check.retry_after_s}s."
            )
        super().__init__(429, message, code="rate_limit_exceeded", type="requests", headers=headers)
        self.check = check


async def check_rate_limits(
    services: Services, account: Account, tier: TierSettings, images: int
) -> dict[str, str]:
    """Count the request; its x-ratelimit-* headers, or a 429 carrying them."""
    limiter = services.limiter
    if limiter.in_memory:
        check = limiter.check(account.id, tier, images)
    else:
        check = await run_blocking(limiter.check, account.id, tier, images)
    if check.allowed:
        return check.headers()
    raise RateLimited(account.tier, tier, check, images)


def rollout_refusal(services: Services, account: Account, feature: str) -> APIError | None:
    """The 403 for an account the feature is not rolled out to (or switched off); None
    when it may use it. A pure function of the flag as it is now and the account."""
    flag = services.controls.feature(feature)
    if flag is None or feature_allows(feature, flag, account.tier, account.id):
        return None
    label = FEATURE_NAMES.get(feature, feature)
    if not flag.enabled:
        return APIError(
            403,
            f"{label} is switched off for the moment. Please try again later.",
            code="feature_disabled",
        )
    return APIError(
        403,
        f"{label} is not yet available on your plan ({account.tier}). It is being "
        "rolled out gradually; it will reach your account without any change on your side.",
        code="feature_not_available",
    )


# Its own bucket of an account's counts, apart from the tiers' "requests" and "images".
READ_BUCKET = "reads"


async def check_read_limit(services: Services, account: Account) -> None:
    """Count a request that starts no job against ``read_rate_limit``; a 429 past it.
    Reads are cheap one by one, but polling in a tight loop, or a script walking every
    id, costs the database as much as a surge: so they have a budget of their own."""
    limit = services.settings.read_rate_limit
    if limit is None:
        return
    limiter = services.limiter
    if limiter.in_memory:
        allowed, window = limiter.hit(limit, READ_BUCKET, account.id)
    else:
        allowed, window = await run_blocking(limiter.hit, limit, READ_BUCKET, account.id)
    if allowed:
        return
    retry = max(1, math.ceil(window.reset_s))
    raise APIError(
        429,
        f"Rate limit reached for reads on this account: limit {window.limit} per window "
        f"({limit}). Please try again in {retry}s; to follow a job, open its events_url "
        "rather than polling it.",
        code="rate_limit_exceeded",
        type="requests",
        headers={"Retry-After": str(retry)},
    )


async def _read_limited(services: ServicesDep, account: OptionalAccountDep) -> None:
    # No account (no key, or a signed image link): the route answers that itself.
    if account is not None:
        await check_read_limit(services, account)


# For a route's (or a router's) ``dependencies``: counts the request as a read.
ReadLimit = Depends(_read_limited)
# For the same route's ``responses``, so that /openapi.json lists the 429 (openapi.py
# gives it the error schema and Retry-After).
READ_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {"description": "Past the account's read limit (or its open streams): retry later."}
}


async def check_moderation(services: Services, account: Account, spec: JobSpec) -> None:
    """A 400 ``moderation_blocked`` for a prompt the policy refuses (counted, and recorded
    for audit); a 503 when the classifier is down and ``moderation_on_error`` refuses."""
    tier = services.controls.tier(account.tier)
    relaxed = spec.moderation == "low" and tier.moderation == "standard"
    try:
        verdict = await services.moderation.check(spec.prompt, relaxed)
    except ClassifierDown as err:
        raise APIError(503, f"{err}; try again shortly.", code="moderation_unavailable") from err
    if not verdict.refused:
        return
    services.metrics.moderation_refusals.labels(account.tier, verdict.policy).inc()
    log_refusal = services.store.moderation.record
    await run_blocking(log_refusal, account.id, verdict.policy, verdict.reason, spec.prompt)
    raise APIError(
        400,
        "Your request was rejected by the safety system: the prompt asks for content this "
        "service does not make. Rephrase it and try again.",
        type="image_generation_user_error",
        param="prompt",
        code="moderation_blocked",
    )
