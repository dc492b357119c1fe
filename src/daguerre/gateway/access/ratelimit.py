"""Per-account request and image limits, with the ``limits`` library.

The counts live in memory for one gateway, or in Redis (``DAGUERRE_REDIS_URL``) so that
every replica counts against one budget. The limits themselves come from the tier as
it is now (live overrides included); changing one starts a fresh window.

Redis is never a single point of failure: when it does not answer, each check is decided
by ``redis_outage`` (counted in this gateway's memory, let through, or refused), with one
warning per outage and a metric per check, and Redis is tried again ``redis_retry_s``
later. The memory counts of an outage start empty and are dropped when Redis is back
(each gateway then allows up to a full budget of its own for the outage).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.types import Scope

from daguerre.access import TierSettings
from daguerre.gateway.api.missing_headers import MissingHeadersMiddleware

log = logging.getLogger(__name__)

OutageMode = Literal["memory", "open", "closed"]
# A Redis that does not answer within this long counts as down (the check blocks a thread).
REDIS_TIMEOUT_S = 1.0

T = TypeVar("T")


def openai_duration(seconds: float) -> str:
    """OpenAI's reset format: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class Window:
    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True)
class LimitCheck:
    allowed: bool
    requests: Window
    images: Window
    exceeded: str | None = None  # "requests" | "images" | "unavailable" (Redis, closed)

    @property
    def retry_after_s(self) -> int:
        window = self.images if self.exceeded == "images" else self.requests
        return max(1, math.ceil(window.reset_s))

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, window in (("requests", self.requests), ("images", self.images)):
            out[f"x-ratelimit-limit-{name}"] = str(window.limit)
            out[f"x-ratelimit-remaining-{name}"] = str(window.remaining)
            out[f"x-ratelimit-reset-{name}"] = openai_duration(window.reset_s)
        return out


class RateLimiter:
    def __init__(
        self,
        storage_uri: str | None,
        outage: OutageMode = "memory",
        retry_s: float = 5.0,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        # In memory, a check is a few dictionary operations: the event loop does it
        # itself rather than hop to a thread (a surge is mostly these checks).
        self.in_memory = storage_uri is None or storage_uri.startswith("memory")
        self._memory = FixedWindowRateLimiter(storage_from_string("memory://"))
        self._shared: FixedWindowRateLimiter | None = None
        if not self.in_memory:
            assert storage_uri is not None
            options = {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S}
            storage = storage_from_string(storage_uri, wrap_exceptions=True, **options)
            self._shared = FixedWindowRateLimiter(storage)
        self.outage = outage
        self._retry_s = retry_s
        self._on_fallback = on_fallback
        self._lock = threading.Lock()
        self._retry_at: float | None = None  # time.monotonic(); None while Redis answers

    @property
    def redis_down(self) -> bool:
        """Redis failed and has not answered since."""
        return self._retry_at is not None

    def ping(self) -> bool:
        """Whether the shared storage answers now (blocking); True without one."""
        return self._shared is None or bool(self._shared.storage.check())

    def _run(self, count: Callable[[FixedWindowRateLimiter], T]) -> T | None:
        """``count`` on Redis, unless it is out: None then (the caller falls back)."""
        if self._shared is None:
            return count(self._memory)
        with self._lock:
            if self._retry_at is not None and time.monotonic() < self._retry_at:
                return None
        try:
            result = count(self._shared)
        except StorageError as err:
            with self._lock:
                if self._retry_at is None:
                    log.warning(
                        "Redis unavailable for rate limits (%s): redis_outage=%s until it is "
                        "back, tried again every %ss",
                        err.storage_error,
                        self.outage,
                        self._retry_s,
                    )
                self._retry_at = time.monotonic() + self._retry_s
            return None
        with self._lock:
            if self._retry_at is not None:
                log.info("Redis is back: rate limits are shared again")
                self._retry_at = None
                self._memory.storage.reset()  # the next outage starts from empty counts
        return result

    def _fallback(self) -> None:
        if self._on_fallback is not None:
            self._on_fallback(self.outage)

    def _window(self, limiter: FixedWindowRateLimiter, item: RateLimitItem, *ids: str) -> Window:
        stats = limiter.get_window_stats(item, *ids)
        reset = max(0.0, stats.reset_time - time.time())
        return Window(item.amount, max(0, stats.remaining), reset)

    def check(self, account_id: str, tier: TierSettings, images: int) -> LimitCheck:
        """Count one request of ``images`` images, unless a limit is already spent.

        Blocking when the counts are in Redis: call it from a thread then."""
        requests_item, images_item = parse(tier.requests), parse(tier.images)

        def count(limiter: FixedWindowRateLimiter) -> LimitCheck:
            return self._check(limiter, account_id, requests_item, images_item, images)

        check = self._run(count)
        if check is not None:
            return check
        self._fallback()
        if self.outage == "memory":
            return count(self._memory)
        if self.outage == "open":
            full = Window(requests_item.amount, requests_item.amount, 0.0)
            return LimitCheck(True, full, Window(images_item.amount, images_item.amount, 0.0))
        shut = Window(requests_item.amount, 0, self._retry_s)
        closed = Window(images_item.amount, 0, self._retry_s)
        return LimitCheck(False, shut, closed, exceeded="unavailable")

    def _check(
        self,
        limiter: FixedWindowRateLimiter,
        account_id: str,
        requests_item: RateLimitItem,
        images_item: RateLimitItem,
        images: int,
    ) -> LimitCheck:
        exceeded = None
        # Images are tested before they are taken, so that a refused request of many
        # images leaves the rest of the window to smaller ones.
        if images > images_item.amount or not limiter.test(
            images_item, "images", account_id, cost=images
        ):
            exceeded = "images"
        elif not limiter.hit(requests_item, "requests", account_id):
            exceeded = "requests"
        else:
            limiter.hit(images_item, "images", account_id, cost=images)
        return LimitCheck(
            allowed=exceeded is None,
            requests=self._window(limiter, requests_item, "requests", account_id),
            images=self._window(limiter, images_item, "images", account_id),
            exceeded=exceeded,
        )

    def hit(self, limit: str, bucket: str, account_id: str) -> tuple[bool, Window]:
        """Count one request against ``limit`` (e.g. "600/minute") in its own ``bucket``
        of the account's counts: whether it was allowed, and the window after it.

        Blocking when the counts are in Redis: call it from a thread then."""
        item = parse(limit)

        def count(limiter: FixedWindowRateLimiter) -> tuple[bool, Window]:
            allowed = limiter.hit(item, bucket, account_id)
            return allowed, self._window(limiter, item, bucket, account_id)

        result = self._run(count)
        if result is not None:
            return result
        self._fallback()
        if self.outage == "memory":
            return count(self._memory)
        if self.outage == "open":
            return True, Window(item.amount, item.amount, 0.0)
        return False, Window(item.amount, 0, self._retry_s)


class RateLimitHeadersMiddleware(MissingHeadersMiddleware):
    """Adds the x-ratelimit-* headers a handler left in ``request.state`` to its answer
    (a streamed one too), as OpenAI does on every response."""

    def headers(self, scope: Scope) -> Mapping[str, str] | None:
        extra: Mapping[str, str] | None = scope.get("state", {}).get("ratelimit_headers")
        return extra
