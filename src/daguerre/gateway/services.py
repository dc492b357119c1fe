"""Everything a request handler may need, built once per gateway process."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import anyio

from daguerre.config import Settings
from daguerre.engine.client import Engine, TemporalEngine
from daguerre.gateway.admission import Admission
from daguerre.gateway.controls import LiveControls
from daguerre.gateway.keycache import KeyCache
from daguerre.gateway.metrics import Metrics
from daguerre.gateway.ratelimit import RateLimiter
from daguerre.gateway.reconciler import Reconciler
from daguerre.gateway.signing import UrlSigner
from daguerre.gateway.streams import StreamSlots
from daguerre.store import Store, open_store
from daguerre.store.progress import ProgressFeed, progress_feed


@dataclass
class Services:
    settings: Settings
    store: Store
    engine: Engine
    feed: ProgressFeed
    signer: UrlSigner
    controls: LiveControls
    limiter: RateLimiter
    admission: Admission
    metrics: Metrics
    keys: KeyCache
    streams: StreamSlots
    _refresher: asyncio.Task[None] | None = None
    _reconciler: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, settings: Settings, engine: Engine | None = None, store: Store | None = None
    ) -> Services:
        if store is None:
            store = await anyio.to_thread.run_sync(open_store, settings)
        controls = LiveControls(settings, store.controls)
        await anyio.to_thread.run_sync(controls.refresh)
        services = cls(
            settings=settings,
            store=store,
            engine=engine if engine is not None else TemporalEngine(settings),
            feed=progress_feed(settings, store.jobs, store.blobs),
            signer=UrlSigner.from_settings(settings),
            controls=controls,
            # Redis when configured, so that every replica counts against one budget.
            limiter=RateLimiter(settings.redis_url),
            admission=Admission(settings, store.jobs, controls),
            metrics=Metrics(),
            keys=KeyCache(settings.auth_cache_s),
            streams=StreamSlots(settings.max_streams_per_account),
        )
        services._refresher = asyncio.create_task(controls.run())
        if settings.orphan_sweep_s > 0:  # at start-up, then periodically
            reconciler = Reconciler(settings, store, services.engine, controls)
            services._reconciler = asyncio.create_task(reconciler.run())
        return services

    async def close(self) -> None:
        for task in (self._refresher, self._reconciler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.feed.close()
        await self.engine.close()
        self.store.close()
