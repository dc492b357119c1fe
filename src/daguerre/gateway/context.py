"""Everything a request handler may need, built once per gateway process."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from daguerre.config import Settings
from daguerre.engine.client import TemporalWorkflowClient, WorkflowClient
from daguerre.gateway.access.admission import Admission
from daguerre.gateway.access.controls import LiveControls
from daguerre.gateway.access.keycache import KeyCache
from daguerre.gateway.access.moderation import Moderation
from daguerre.gateway.access.ratelimit import RateLimiter
from daguerre.gateway.access.refusals import RefusalCache
from daguerre.gateway.access.streams import StreamSlots
from daguerre.gateway.metrics import Metrics
from daguerre.gateway.services.reconciler import Reconciler
from daguerre.gateway.services.retention import RetentionSweeper
from daguerre.gateway.services.signing import UrlSigner
from daguerre.progress import ProgressFeed, progress_feed
from daguerre.store import Store, open_store
from daguerre.store.threads import run_blocking


@dataclass
class Services:
    settings: Settings
    store: Store
    workflows: WorkflowClient
    feed: ProgressFeed
    signer: UrlSigner
    controls: LiveControls
    limiter: RateLimiter
    admission: Admission
    metrics: Metrics
    keys: KeyCache
    streams: StreamSlots
    moderation: Moderation
    refusals: RefusalCache
    _refresher: asyncio.Task[None] | None = None
    _key_refresher: asyncio.Task[None] | None = None
    _reconciler: asyncio.Task[None] | None = None
    _retention: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, settings: Settings, workflows: WorkflowClient | None = None, store: Store | None = None
    ) -> Services:
        if store is None:
            store = await run_blocking(open_store, settings)
        controls = LiveControls(settings, store.controls)
        await run_blocking(controls.refresh)
        metrics = Metrics()
        services = cls(
            settings=settings,
            store=store,
            workflows=workflows if workflows is not None else TemporalWorkflowClient(settings),
            feed=progress_feed(settings, store),
            signer=UrlSigner.from_settings(settings),
            controls=controls,
            # Redis when configured, so that every replica counts against one budget.
            limiter=RateLimiter(
                settings.redis_url,
                settings.redis_outage,
                settings.redis_retry_s,
                on_fallback=lambda mode: metrics.ratelimit_fallbacks.labels(mode).inc(),
            ),
            admission=Admission(settings, store.queue_stats, controls, store.workers),
            metrics=metrics,
            keys=KeyCache(settings.auth_cache_s),
            streams=StreamSlots(settings.max_streams_per_account),
            moderation=Moderation(settings),
            refusals=RefusalCache(settings.replay_refusals),
        )
        services._refresher = asyncio.create_task(controls.run())
        services._key_refresher = asyncio.create_task(
            services.keys.run(store.accounts.grants_by_hash)
        )
        if settings.orphan_sweep_s > 0:  # at start-up, then periodically
            reconciler = Reconciler(settings, store, services.workflows, controls)
            services._reconciler = asyncio.create_task(reconciler.run())
        if settings.retention_sweep_s > 0:
            retention = RetentionSweeper(settings, store, controls, metrics)
            services._retention = asyncio.create_task(retention.run())
        return services

    async def close(self) -> None:
        for task in (self._refresher, self._key_refresher, self._reconciler, self._retention):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.feed.close()
        await self.moderation.close()
        await self.workflows.close()
        with contextlib.suppress(Exception):  # the database may be the reason we stop
            await run_blocking(self.metrics.release_queue, self.store)
        self.store.close()
