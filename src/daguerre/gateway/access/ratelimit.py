"""Per-account request and image limits, with the ``limits`` library.

The counts live in memory for one gateway, or in Redis (``DAGUERRE_REDIS_URL``) so that
every replica counts against one budget. The limits themselves come from the tier as
it is now (live overrides included); changing one starts a fresh window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daguerre.access import TierSettings


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
    exceeded: str | None = None  # "requests" | "images"

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
    def __init__(self, storage_uri: str | None) -> None:
        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri or "memory://"))
        # In memory, a check is a few dictionary operations: the event loop does it
        # itself rather than hop to a thread (a surge is mostly these checks).
        self.in_memory = storage_uri is None or storage_uri.startswith("memory")

    def _window(self, item: RateLimitItem, *ids: str) -> Window:
        stats = self._limiter.get_window_stats(item, *ids)
        reset = max(0.0, stats.reset_time - time.time())
        return Window(item.amount, max(0, stats.remaining), reset)

    def check(self, account_id: str, tier: TierSettings, images: int) -> LimitCheck:
        """Count one request of ``images`` images, unless a limit is already spent.

        Blocking when the counts are in Redis: call it from a thread then."""
        requests_item, images_item = parse(tier.requests), parse(tier.images)
        exceeded = None
        # Images are tested before they are taken, so that a refused request of many
        # images leaves the rest of the window to smaller ones.
        if images > images_item.amount or not self._limiter.test(
            images_item, "images", account_id, cost=images
        ):
            exceeded = "images"
        elif not self._limiter.hit(requests_item, "requests", account_id):
            exceeded = "requests"
        else:
            self._limiter.hit(images_item, "images", account_id, cost=images)
        return LimitCheck(
            allowed=exceeded is None,
            requests=self._window(requests_item, "requests", account_id),
            images=self._window(images_item, "images", account_id),
            exceeded=exceeded,
        )

    def hit(self, limit: str, bucket: str, account_id: str) -> tuple[bool, Window]:
        """Count one request against ``limit`` (e.g. "600/minute") in its own ``bucket``
        of the account's counts: whether it was allowed, and the window after it.

        Blocking when the counts are in Redis: call it from a thread then."""
        item = parse(limit)
        allowed = self._limiter.hit(item, bucket, account_id)
        return allowed, self._window(item, bucket, account_id)


class RateLimitHeadersMiddleware:
    """Adds the x-ratelimit-* headers a handler left in ``request.state`` to its answer
    (a streamed one too), as OpenAI does on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get("ratelimit_headers")
                if extra:
                    headers = MutableHeaders(scope=message)
                    for name, value in extra.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
