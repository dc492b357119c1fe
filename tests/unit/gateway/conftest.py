"""A gateway on the ASGI transport, with a real store and a fake engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from daguerre.config import Settings
from daguerre.gateway.app import create_app
from daguerre.store import Store, open_store
from tests.support.engine import FakeEngine


@dataclass
class Gateway:
    client: httpx.AsyncClient
    store: Store
    engine: FakeEngine
    settings: Settings
    key: str
    other_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """A gateway on ``settings`` with two accounts: alice (pro, api) and bob (free, chat)."""
    store = open_store(settings)
    accounts = store.accounts
    key = accounts.create_api_key(accounts.create_account("alice", "pro", "api").id)
    other = accounts.create_api_key(accounts.create_account("bob", "free", "chat").id)
    engine = FakeEngine(store)
    app = create_app(settings, workflows=engine, store=store)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            yield Gateway(client, store, engine, settings, key, other)
    finally:
        store.close()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings(data_dir=tmp_path, events_poll_interval_s=0.02, max_body_bytes=100_000)
    async with running_gateway(settings) as gateway:
        yield gateway
