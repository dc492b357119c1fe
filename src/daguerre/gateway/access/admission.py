"""Admission: should this job be queued, deferred, or refused, and how long will it wait?

The estimate is the pool's backlog that runs no later than the job (its priority key or
a smaller one, from the job table) divided by the pool's measured throughput (jobs
finished in the last minute; until a few have, the capacity its workers report to the
worker registry, capacity.py). Under load we give up latency before availability:

- within the tier's wait budget: queued at the tier's priority;
- past it, a ``defer`` tier: accepted as ``deferred`` and started at once at the lowest
  priority key (DEFERRED), so Temporal runs it when nothing else waits, and no
  accepted job is ever held only in a gateway's memory;
- past it, a ``reject`` tier: 429 with a Retry-After from the estimate;
- at the pool's hard backlog cap: only tiers with ``admit_past_cap``;
- past the pool's admission pace, when an operator set one (a multiple of its
  throughput): only tiers with ``admit_past_cap``. It spreads a surge's first burst
  over seconds: a cap's worth of workflow starts in one second slows Temporal for
  everyone, paid work included.

Degraded mode: while a pool's backlog is past ``degrade_backlog`` (and until it falls
below half of that) tiers with reduced settings get them. Operators can force it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from daguerre.access import RenderDefaults, TierSettings
from daguerre.config import Settings
from daguerre.domain import JobSpec, JobStatus
from daguerre.gateway.access.capacity import live_workers, reported_throughput
from daguerre.gateway.access.controls import LiveControls
from daguerre.gateway.api.errors import APIError
from daguerre.priority import DEFERRED
from daguerre.store import QueueStats, WorkerRegistry

THROUGHPUT_WINDOW_S = 60.0
# Below this many finished jobs in the window the rate says little; use render times.
MIN_SAMPLE = 5


@dataclass(frozen=True)
class Decision:
    status: JobStatus
    priority: int
    degraded: bool
    ahead: int
    wait_s: float | None


@dataclass
class _Cached:
    at: float = 0.0
    value: float | None = None


@dataclass
class BacklogSnapshot:
    """A pool's waiting jobs per priority key, as read at ``at`` (monotonic seconds),
    plus the jobs this gateway admitted since."""

    at: float
    counts: dict[int | None, int]

    def total(self) -> int:
        return sum(self.counts.values())

    def up_to(self, priority: int) -> int:
        """Jobs that run no later than ``priority``: its key or a smaller one (jobs
        without a key count too)."""
        return sum(n for p, n in self.counts.items() if p is None or p <= priority)


@dataclass
class Pace:
    """A token bucket for one pool's low-priority admissions; its rate follows the
    pool's throughput, so it is given at every take."""

    tokens: float = 0.0
    at: float | None = None  # monotonic seconds of the last take; None: full

    def take(self, rate: float, burst: float, now: float) -> float:
        """0.0 if a job may be admitted now (and counts it), else the seconds until
        one may."""
        if self.at is None:
            self.tokens = burst
        else:
            self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate


class Admission:
    def __init__(
        self,
        settings: Settings,
        stats: QueueStats,
        controls: LiveControls,
        workers: WorkerRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._controls = controls
        self._workers = workers  # what the workers report of their capacity
        self._throughput: dict[str, _Cached] = {}
        self._degraded: dict[str, bool] = {}
        self._cache_s = 1.0
        # A surge is mostly refusals: each answer reads the backlog from this snapshot,
        # renewed every ``admission_cache_s``, rather than counting the job table twice
        # (profiled: a fifth of the gateway's CPU at 50 requests/s).
        self._backlogs: dict[str, BacklogSnapshot] = {}
        self._reading: set[str] = set()  # pools whose counts a thread is reading now
        self._lock = threading.Lock()  # decide() runs in threads: guards these
        self._paces: dict[str, Pace] = {}

    # --- measurements (blocking: call from a thread) ------------------------------------
    def throughput(self, pool: str) -> float | None:
        """Jobs per second the pool finishes, or None before it has finished any."""
        cached = self._throughput.setdefault(pool, _Cached())
        now = time.monotonic()
        if now - cached.at < self._cache_s:
            return cached.value
        since = datetime.now(UTC) - timedelta(seconds=THROUGHPUT_WINDOW_S)
        count, oldest = self._stats.finished_since(pool, since)
        value: float | None = None
        if count >= MIN_SAMPLE and oldest is not None:
            # Over the span actually covered: a pool idle until a moment ago is not slow.
            span = max(1.0, (datetime.now(UTC) - oldest).total_seconds())
            value = count / span
        else:
            value = self.capacity(pool)
        cached.at, cached.value = now, value
        return value

    def capacity(self, pool: str) -> float | None:
        """Jobs per second the pool can finish, until it has finished enough jobs in the
        window to measure it: what its live workers report (capacity.py), wherever they
        run. Only when no worker has reported (none is up yet, or the registry cannot be
        read), the old guess from the launcher's ``processes`` setting, which says nothing
        of workers on other hosts."""
        render_s = self._stats.recent_render_seconds(pool)
        workers = live_workers(self._workers, pool, self._settings.worker_report_s)
        if workers:
            return reported_throughput(workers, render_s)
        if render_s:
            # One render at a time per process: a low guess (batching runs many).
            return max(1, self._settings.pools[pool].processes) / render_s
        return None

    def fresh(self, pool: str) -> bool:
        """Whether ``decide`` for ``pool`` would read nothing from the database now: the
        event loop may then call it itself (most answers of a busy gateway)."""
        now = time.monotonic()
        snapshot = self._backlogs.get(pool)
        throughput = self._throughput.get(pool)
        return (
            snapshot is not None
            and now - snapshot.at < self._settings.admission_cache_s
            and throughput is not None
            and now - throughput.at < self._cache_s
        )

    def backlog(self, pool: str) -> BacklogSnapshot:
        """The pool's waiting jobs, at most ``admission_cache_s`` old (or a little older
        while another thread reads the new counts: one reads, the rest do not wait)."""
        with self._lock:
            snapshot = self._backlogs.get(pool)
            now = time.monotonic()
            fresh = snapshot is not None and now - snapshot.at < self._settings.admission_cache_s
            if fresh or (snapshot is not None and pool in self._reading):
                return snapshot  # type: ignore[return-value]
            self._reading.add(pool)
        try:
            counts = self._stats.backlog_by_priority(pool)
        finally:
            with self._lock:
                self._reading.discard(pool)
        with self._lock:
            snapshot = BacklogSnapshot(now, counts)
            self._backlogs[pool] = snapshot
            return snapshot

    def _admitted(self, pool: str, priority: int) -> None:
        """Count a job admitted here into the snapshot until the next read, so that a
        burst between two reads cannot pass the cap unseen."""
        with self._lock:
            snapshot = self._backlogs.get(pool)
            if snapshot is not None:
                snapshot.counts[priority] = snapshot.counts.get(priority, 0) + 1

    def is_degraded(self, pool: str, backlog: int | None = None) -> bool:
        mode = self._controls.degraded_mode(pool)
        if mode != "auto":
            return mode == "on"
        if backlog is None:
            backlog = self.backlog(pool).total()
        threshold = self._settings.pools[pool].degrade_backlog
        was = self._degraded.get(pool, False)
        # Hysteresis: on at the threshold, off below half of it, so it does not flap.
        now = backlog >= threshold if not was else backlog >= threshold / 2
        self._degraded[pool] = now
        return now

    def estimate(self, pool: str, priority: int) -> tuple[int, float | None]:
        ahead = self.backlog(pool).up_to(priority)
        if ahead == 0:
            return 0, 0.0
        rate = self.throughput(pool)
        return ahead, (round(ahead / rate, 1) if rate else None)

    def _check_pace(self, tier_name: str, pool: str) -> None:
        """Refuse (429) past the pool's admission pace, when one is set and the pool's
        throughput is known."""
        factor = self._controls.admit_pace(pool)
        rate = self.throughput(pool) if factor else None
        if not rate:
            return
        rate *= factor
        with self._lock:
            wait = self._paces.setdefault(pool, Pace()).take(rate, max(1.0, rate), time.monotonic())
        if wait:
            retry = max(1, math.ceil(wait))
            raise APIError(
                429,
                f"The service is taking in work for your plan ({tier_name}) gradually while "
                f"it is busy; please retry in {retry} s.",
                code="admission_paced",
                type="requests",
                headers={"Retry-After": str(retry)},
            )

    # --- the decision -------------------------------------------------------------------
    def decide(self, tier_name: str, pool: str, can_defer: bool = True) -> Decision:
        """Blocking (database reads) unless ``fresh``: call it from a thread then.
        Raises a 429 APIError.

        ``can_defer`` is False for a client that holds its connection open for the
        image (OpenAI's synchronous and streaming endpoints): a deferred job would only
        keep it waiting, so past the budget it gets the 429 and its Retry-After."""
        tier = self._controls.tier(tier_name)
        pool_settings = self._settings.pools[pool]
        backlog = self.backlog(pool).total()
        if backlog >= pool_settings.max_backlog and not tier.admit_past_cap:
            _, wait = self.estimate(pool, DEFERRED)
            raise APIError(
                429,
                f"The service is at capacity for your plan ({tier_name}); please retry later.",
                code="capacity_exceeded",
                type="requests",
                headers={"Retry-After": str(_retry_after(wait, 0.0, default=30))},
            )
        if not tier.admit_past_cap:
            self._check_pace(tier_name, pool)
        ahead, wait = self.estimate(pool, tier.priority)
        status, priority = JobStatus.QUEUED, tier.priority
        if wait is not None and wait > tier.wait_budget_s:
            if tier.over_budget == "reject" or not can_defer:
                retry = _retry_after(wait, tier.wait_budget_s, default=10)
                raise APIError(
                    429,
                    f"The queue is too long for your plan ({tier_name}): the estimated wait "
                    f"is {wait:.0f} s, over its budget of {tier.wait_budget_s:.0f} s. "
                    f"Please retry in {retry} s.",
                    code="queue_full",
                    type="requests",
                    headers={"Retry-After": str(retry)},
                )
            status, priority = JobStatus.DEFERRED, DEFERRED
        degraded = tier.degraded is not None and self.is_degraded(pool, backlog)
        self._admitted(pool, priority)
        return Decision(status, priority, degraded, ahead, wait)


def _retry_after(wait: float | None, budget: float, default: int) -> int:
    if wait is None:
        return default
    return max(1, math.ceil(wait - budget))


def apply_tier(spec: JobSpec, tier: TierSettings, degraded: bool) -> JobSpec:
    """The spec with the tier's defaults (and ceilings) filled in, reduced when degraded."""
    terms: RenderDefaults = tier.degraded if degraded and tier.degraded else tier
    steps = spec.steps if spec.steps is not None else tier.steps
    if degraded and terms.steps is not None and (steps is None or steps > terms.steps):
        steps = terms.steps
    return replace(
        spec,
        steps=steps,
        partial_images=min(spec.partial_images, terms.partial_images),
        quality=spec.quality if spec.quality is not None else terms.quality,
    )
