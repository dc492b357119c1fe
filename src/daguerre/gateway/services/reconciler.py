"""The orphan reconciler: waiting jobs whose workflow was never started.

A gateway records a job, then starts its workflow. If it dies between the two (a kill,
a crash, a lost host), the row stays ``queued`` for ever: nobody will run it, and it
still counts in the backlog and in every queue position behind it. So each gateway, at
start-up and then every ``orphan_sweep_s``, walks the queued and deferred rows older
than ``orphan_min_age_s`` and asks Temporal about each:

- a workflow runs: nothing to do (and the row is not asked about again);
- no workflow: start it, as the gateway would have, at the priority admission gave it
  (a deferred job keeps the lowest key, so it still runs after all other work); or,
  when it can no longer run (an edit whose upload is gone, a pool no longer
  configured), fail it with the reason;
- the workflow ended and left the row waiting (an operator terminated it): fail it.

Several gateways may sweep at once: starting a workflow that exists attaches to it
(the engine's submit is idempotent on the job id), and failing a job is a conditional
update that a finished job ignores. The minimum age keeps the sweep away from a job
whose submit is still under way (the engine retries a start for up to ~45 s).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from daguerre.access import TierSettings
from daguerre.config import Settings
from daguerre.domain import JobRecord
from daguerre.engine.client import EngineUnavailable, WorkflowClient
from daguerre.gateway.access.controls import LiveControls
from daguerre.store import Store
from daguerre.store.tables import utcnow
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)

PAGE = 200
# Execution statuses of a workflow that still runs (the others say it ended).
_OPEN = frozenset({"RUNNING", "CONTINUED_AS_NEW"})
# Why a job fails whose workflow closed and left it unfinished (also job_waits.py).
CLOSED_UNFINISHED = "the job's workflow ended without finishing it (terminated or timed out)"


async def start_workflow(engine: WorkflowClient, job: JobRecord, tier: TierSettings) -> None:
    """Start the job's workflow (harmless if it runs already: the engine attaches to
    it), at the priority admission gave it, so a deferred job stays behind all others."""
    await engine.submit(
        job.id,
        job.spec,
        job.pool,
        job.priority if job.priority is not None else tier.priority,
        job.account_id,
        tier.fairness_weight,
        webhook=job.webhook_url is not None,
        tier=job.tier,
    )


@dataclass
class Swept:
    """What one sweep did."""

    checked: int = 0  # rows it asked Temporal about
    started: int = 0
    failed: int = 0


class Reconciler:
    def __init__(
        self, settings: Settings, store: Store, engine: WorkflowClient, controls: LiveControls
    ) -> None:
        self._settings = settings
        self._store = store
        self._engine = engine
        self._controls = controls
        # Rows seen with a live workflow: a long backlog is asked about once, not on
        # every sweep. Forgotten once they stop waiting.
        self._live: set[str] = set()

    async def run(self) -> None:
        """Sweep now, then every ``orphan_sweep_s``, until cancelled."""
        while True:
            try:
                swept = await self.sweep()
                if swept.started or swept.failed:
                    log.warning(
                        "orphan jobs: %d started, %d failed (of %d without a known workflow)",
                        swept.started,
                        swept.failed,
                        swept.checked,
                    )
            except EngineUnavailable as err:
                log.info("orphan sweep put off: the engine is unavailable (%s)", err)
            except Exception:  # a sweep must never take the gateway down
                log.exception("orphan sweep failed")
            await asyncio.sleep(self._settings.orphan_sweep_s)

    async def sweep(self) -> Swept:
        """One walk over the waiting rows old enough to be orphans. Raises
        EngineUnavailable if Temporal cannot be asked (the rest waits for next time)."""
        swept = Swept()
        cutoff = utcnow() - timedelta(seconds=self._settings.orphan_min_age_s)
        waiting: set[str] = set()
        after = None
        while True:
            page, after = await run_blocking(self._store.jobs.waiting_before, cutoff, after, PAGE)
            for job in page:
                waiting.add(job.id)
                if job.id not in self._live:
                    swept.checked += 1
                    await self._reconcile(job, swept)
            if after is None:
                break
        self._live &= waiting
        return swept

    async def _reconcile(self, job: JobRecord, swept: Swept) -> None:
        status = await self._engine.status(job.id)
        if status in _OPEN:
            self._live.add(job.id)
            return
        reason: str | None = (
            CLOSED_UNFINISHED if status is not None else await run_blocking(self._cannot_start, job)
        )
        if reason is None:
            tier = self._controls.tier(job.tier or "")
            await start_workflow(self._engine, job, tier)
            self._live.add(job.id)
            swept.started += 1
            log.warning("started the workflow of orphan job %s (%s)", job.id, job.status.value)
            return
        failed = await run_blocking(self._store.jobs.fail, job.id, reason)
        if failed:
            swept.failed += 1
            log.warning("failed orphan job %s: %s", job.id, reason)

    def _cannot_start(self, job: JobRecord) -> str | None:
        """Why the job could not run if started now, or None (blocking: blob reads)."""
        if job.pool not in self._settings.pools:
            return f"its pool '{job.pool}' is no longer configured"
        spec = job.spec
        inputs = (
            ("source image", spec.source_key),
            ("mask", spec.mask_key),
            ("source encoding", spec.source_encoding_key),
        )
        for what, key in inputs:
            if key is not None and not self._store.blobs.exists(key):
                return f"the {what} of this edit was lost before its render could start"
        return None
