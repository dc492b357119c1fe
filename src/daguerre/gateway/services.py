"""Everything a request handler may need, built once per gateway process."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from daguerre.config import Settings
from daguerre.engine.client import Engine, TemporalEngine
from daguerre.gateway.signing import UrlSigner
from daguerre.store import Store, open_store
from daguerre.store.progress import ProgressFeed, progress_feed


@dataclass
class Services:
    settings: Settings
    store: Store
    engine: Engine
    feed: ProgressFeed
    signer: UrlSigner

    @classmethod
    async def start(
        cls, settings: Settings, engine: Engine | None = None, store: Store | None = None
    ) -> Services:
        if store is None:
            store = await anyio.to_thread.run_sync(open_store, settings)
        return cls(
            settings=settings,
            store=store,
            engine=engine if engine is not None else TemporalEngine(settings),
            feed=progress_feed(settings, store.jobs, store.blobs),
            signer=UrlSigner.from_settings(settings),
        )

    async def close(self) -> None:
        await self.engine.close()
        self.store.close()
