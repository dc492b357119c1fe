"""One gateway in this process, for the security suites (tests/security).

A real app and store (SQLite in a temporary folder, or PostgreSQL) with the fake
engine, which renders instantly, so a suite can send hundreds of requests in seconds.
It holds two accounts on the same tier, so that anything one may see and the other may
not is down to ownership alone, and an operator's admin key.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from daguerre.config import Settings
from daguerre.gateway.app import create_app
from daguerre.store import Store, open_store
from tests.support.engine import FakeEngine
from tests.support.stack import FAKE_CATALOG

# Small enough that the oversize upload in the bad-input corpus is cheap to send.
MAX_UPLOAD_BYTES = 2_000_000


@dataclass
class InProcess:
    app: FastAPI
    store: Store
    engine: FakeEngine
    settings: Settings
    key_a: str  # the victim's key: the account whose data others must not reach
    key_b: str  # the prober's key
    admin_key: str
    account_a: str
    account_b: str

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def auth_for(self, path: str, key: str | None = None) -> dict[str, str]:
        """The operator's key for /admin, else ``key`` (A's by default)."""
        if path.startswith("/admin"):
            return self.bearer(self.admin_key)
        return self.bearer(key or self.key_a)


def build(data_dir: Path, **values: Any) -> InProcess:
    """The app, not yet started: run its lifespan (``serve``) or let a client do it."""
    settings = Settings(
        **{
            "data_dir": data_dir,
            "model": "fake",
            "models": {"fake": FAKE_CATALOG},
            "admin_key": f"adm-{secrets.token_urlsafe(16)}",
            "events_poll_interval_s": 0.02,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            # A generation that never finishes answers 503 after this, not never.
            "sync_wait_timeout_s": 10.0,
            **values,
        }
    )
    store = open_store(settings)
    accounts = store.accounts
    account_a = accounts.create_account("victim", "pro", "api").id
    account_b = accounts.create_account("prober", "pro", "api").id
    engine = FakeEngine(store, steps=2, step_delay_s=0.0)
    app = create_app(settings, workflows=engine, store=store)
    assert settings.admin_key is not None
    return InProcess(
        app=app,
        store=store,
        engine=engine,
        settings=settings,
        key_a=accounts.create_api_key(account_a),
        key_b=accounts.create_api_key(account_b),
        admin_key=settings.admin_key.get_secret_value(),
        account_a=account_a,
        account_b=account_b,
    )


@asynccontextmanager
async def serve(target: InProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app's ASGI interface, with the app's lifespan running.

    ``raise_app_exceptions=False``: an unhandled error must reach the test as the 500
    a real server would answer, so that it is counted rather than crash the test.
    """
    transport = httpx.ASGITransport(app=target.app, raise_app_exceptions=False)
    async with (
        target.app.router.lifespan_context(target.app),
        httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client,
    ):
        yield client
