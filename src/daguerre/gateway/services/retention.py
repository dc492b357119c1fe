"""The retention sweep: blobs that have outlived their use are deleted.

Each gateway, at start-up and then every ``retention_sweep_s``, deletes

- the checkpoints a finished job's attempts left behind (a worker that died mid-render,
  an attempt on another host), ``checkpoint_grace_s`` after the job ended;
- the images, uploads and previews of jobs past their tier's ``retention_days`` (the
  tier as operators set it now, live overrides included). The job row stays, marked
  expired: its images then answer 410, and a conversation cannot edit them.

The work is found through the job rows (store/expiry.py), not by listing blobs, so it
costs the same on a folder and on an object store, and a sweep never walks a job twice.
Several gateways may sweep at once: a blob deleted twice is no harm. Each sweep does at
most ``MAX_PAGES`` pages of each kind, so a backlog of years is worked off over a few
sweeps rather than in one long one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from daguerre.blob_layout import checkpoint_prefix, job_prefixes
from daguerre.config import Settings
from daguerre.gateway.access.controls import LiveControls
from daguerre.gateway.metrics import Metrics
from daguerre.store import Store
from daguerre.store.tables import utcnow
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)

PAGE = 200
MAX_PAGES = 10


@dataclass
class RetentionSwept:
    """What one sweep did: jobs whose leftovers went, and jobs expired per tier."""

    leftovers: int = 0
    expired: dict[str, int] = field(default_factory=dict)


class RetentionSweeper:
    def __init__(
        self, settings: Settings, store: Store, controls: LiveControls, metrics: Metrics
    ) -> None:
        self._settings = settings
        self._store = store
        self._controls = controls
        self._metrics = metrics

    async def run(self) -> None:
        """Sweep now, then every ``retention_sweep_s``, until cancelled."""
        while True:
            try:
                swept = await self.sweep()
                if swept.leftovers or swept.expired:
                    log.info(
                        "retention: leftovers of %d jobs deleted, expired %s",
                        swept.leftovers,
                        swept.expired or "none",
                    )
            except Exception:  # a sweep must never take the gateway down
                self._metrics.retention_failures.inc()
                log.exception("retention sweep failed; trying again next time")
            await asyncio.sleep(self._settings.retention_sweep_s)

    async def sweep(self, now: datetime | None = None) -> RetentionSwept:
        """One sweep of both kinds (``now``: the clock, for tests)."""
        return await run_blocking(self._sweep, now or utcnow())

    def _sweep(self, now: datetime) -> RetentionSwept:
        swept = RetentionSwept()
        # Expiry first: it takes a job's checkpoints with the rest, once.
        for name, tier in self._controls.access.tiers.items():
            if tier.retention_days is None:
                continue
            cutoff = now - timedelta(days=tier.retention_days)
            count = self._pages(
                partial(self._store.expiry.expiring, name, cutoff, PAGE),
                job_prefixes,
                lambda ids: self._store.expiry.mark_expired(ids, now),
            )
            if count:
                swept.expired[name] = count
                self._metrics.retention_jobs.labels("expired", name).inc(count)
        grace = timedelta(seconds=self._settings.checkpoint_grace_s)
        swept.leftovers = self._pages(
            lambda: self._store.expiry.unswept(now - grace, PAGE),
            lambda job_id: (checkpoint_prefix(job_id),),
            lambda ids: self._store.expiry.mark_swept(ids, now),
        )
        if swept.leftovers:
            self._metrics.retention_jobs.labels("leftovers", "").inc(swept.leftovers)
        return swept

    def _pages(
        self,
        find: Callable[[], list[str]],
        prefixes: Callable[[str], tuple[str, ...]],
        mark: Callable[[list[str]], None],
    ) -> int:
        """Delete the blobs of the jobs ``find`` names, a page at a time, marking each
        page once its blobs are gone (a failure leaves the page for the next sweep)."""
        done = 0
        for _ in range(MAX_PAGES):
            job_ids = find()
            for job_id in job_ids:
                for prefix in prefixes(job_id):
                    self._store.blobs.delete_prefix(prefix)
            mark(job_ids)
            done += len(job_ids)
            if len(job_ids) < PAGE:
                break
        return done
