"""Spent rate limits remembered, so that a key refused once is refused again cheaply.

In a launch's flood most requests are refused for a spent rate limit: at the
rehearsal's peak about 400 a second, from a few hundred free accounts each told to
come back in up to a minute. Each such request went through the whole of FastAPI
(routing, dependencies, the body's validation, the error handlers) to reach the same
answer, and paid requests queued behind them in the gateway's event loop.

A refusal is remembered by the key's hash until its window resets; the middleware in
refusal_replay.py answers the key's next job-starting requests from it, before
FastAPI parses anything. What it remembers is exactly what the limiter said, so the
answer is the one the full path would give: a refused request is not counted by the
limiter, so the counts cannot move until the window resets. It is only used while

- the window has not reset;
- the key's grant is cached and still says the same tier (a tier change, a revocation
  or an expiry reaches the cache as usual, and then the full path answers);
- the tier's limits are those it was refused under (a changed limit starts a fresh
  window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from daguerre.gateway.access.ratelimit import LimitCheck

# Far more than the keys a flood comes from; past it the map starts over (see put).
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Refusal:
    tier: str  # the account's tier when refused
    limits: tuple[str, str]  # the tier's (requests, images) limits when refused
    check: LimitCheck  # what the limiter said
    requests_reset: float  # time.monotonic() when each window resets
    images_reset: float

    @property
    def until(self) -> float:
        """When the spent window resets, and with it the refusal."""
        return self.images_reset if self.check.exceeded == "images" else self.requests_reset

    def refuses(self, images: int) -> bool:
        """Whether a request of ``images`` images would be refused the same way: images are
        tested before they are taken, so a spent image window still lets a request of
        fewer images than remain try (the full path answers that one)."""
        if self.check.exceeded == "requests":
            return True
        return images > self.check.images.remaining

    def now(self, now: float) -> LimitCheck:
        """The check as it reads at ``now``: the same counts, nearer their reset."""
        return replace(
            self.check,
            requests=replace(self.check.requests, reset_s=max(0.0, self.requests_reset - now)),
            images=replace(self.check.images, reset_s=max(0.0, self.images_reset - now)),
        )


def remembered(tier: str, limits: tuple[str, str], check: LimitCheck) -> Refusal | None:
    """The refusal to remember for ``check``; None for one that is not a spent window
    (Redis out and redis_outage "closed": that passes when Redis is back, not at a
    window's reset)."""
    if check.allowed or check.exceeded not in ("requests", "images"):
        return None
    now = time.monotonic()
    return Refusal(
        tier=tier,
        limits=limits,
        check=check,
        requests_reset=now + check.requests.reset_s,
        images_reset=now + check.images.reset_s,
    )


class RefusalCache:
    """Refusals by key hash, each until its window resets."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: dict[str, Refusal] = {}

    def put(self, key_hash: str, refusal: Refusal) -> None:
        if not self.enabled:
            return
        if len(self._entries) >= MAX_ENTRIES:
            now = time.monotonic()
            self._entries = {k: r for k, r in self._entries.items() if r.until > now}
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # that many refused keys at once: start over
        self._entries[key_hash] = refusal

    def get(self, key_hash: str, now: float) -> Refusal | None:
        refusal = self._entries.get(key_hash)
        if refusal is None:
            return None
        if refusal.until <= now:
            del self._entries[key_hash]
            return None
        return refusal

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)
