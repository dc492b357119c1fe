"""A spent rate limit is refused again before FastAPI parses the request, with the same
answer the full path gives, and only while that answer would be the same."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from daguerre.config import Settings
from daguerre.gateway.api.refusal_replay import _images_asked
from daguerre.gateway.app import create_app
from daguerre.gateway.services import jobs
from daguerre.store import Store, open_store
from tests.support.engine import FakeEngine

ADMIN = "unit-admin"


def access(requests: str = "2/minute", images: str = "100/minute") -> dict[str, Any]:
    return {
        "tiers": {"free": {"requests": requests, "images": images, "over_budget": "reject"}},
        "features": {"generate": {"percent": 100}},
    }


@dataclass
class Gateway:
    http: httpx.AsyncClient
    app: FastAPI
    store: Store
    key: str
    checks: list[str]  # each rate-limit check the full path made

    async def job(self, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        return await self.http.post("/v1/jobs", json={"prompt": "x", **body}, headers=headers)

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return await self.http.request(method, path, json=body, headers=headers)


Make = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Gateway]:
        settings = Settings(
            data_dir=tmp_path,
            admin_key=ADMIN,
            admission_cache_s=0,
            access=values.pop("access", access()),
            **values,
        )
        store = open_store(settings)
        account = store.accounts.create_account("fay", "free", "api")
        key = store.accounts.create_api_key(account.id)
        app = create_app(settings, workflows=FakeEngine(store, render=False), store=store)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
        ):
            checks: list[str] = []
            limiter = app.state.services.limiter
            real_check = limiter.check

            def counted_check(*args: Any) -> Any:
                checks.append(args[0])
                return real_check(*args)

            limiter.check = counted_check
            yield Gateway(http, app, store, key, checks)
        store.close()

    return factory


def without_countdown(message: str) -> str:
    return re.sub(r"try again in \d+s", "try again in Ns", message)


async def test_a_spent_key_is_refused_again_the_same_way_without_the_full_path(
    make: Make,
) -> None:
    async with make() as gw:
        assert [(await gw.job()).status_code for _ in range(2)] == [202, 202]
        full = await gw.job()
        assert full.status_code == 429 and len(gw.checks) == 3
        replayed = await gw.job()
        assert replayed.status_code == 429
        assert len(gw.checks) == 3  # the limiter was not asked again
        first, again = full.json()["error"], replayed.json()["error"]
        assert without_countdown(again["message"]) == without_countdown(first["message"])
        assert {k: v for k, v in again.items() if k != "message"} == {
            k: v for k, v in first.items() if k != "message"
        }
        assert again["code"] == "rate_limit_exceeded"
        for name in ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"):
            assert replayed.headers[name] == full.headers[name]
        assert 1 <= int(replayed.headers["Retry-After"]) <= int(full.headers["Retry-After"])
        assert replayed.headers["x-content-type-options"] == "nosniff"  # security headers
        metrics = (await gw.http.get("/metrics")).text
        # Both refusals counted alike, by reason and by route and tier.
        assert re.search(r'daguerre_jobs_rejected_total\{[^}]*reason="rate_limit_exceeded"'
                         r'[^}]*\} 2\.0', metrics)  # fmt: skip
        assert re.search(r'daguerre_http_requests_total\{[^}]*route="/v1/jobs"[^}]*'
                         r'status="429",tier="free"\} 2\.0', metrics)  # fmt: skip


async def test_a_changed_limit_ends_the_replay(make: Make) -> None:
    """A new limit starts a fresh window: the next request goes the full way, and passes."""
    async with make() as gw:
        for _ in range(3):
            await gw.job()
        assert (await gw.job()).status_code == 429
        changed = await gw.admin("PATCH", "/admin/tiers/free", {"requests": "10/minute"})
        assert changed.status_code == 200
        assert (await gw.job()).status_code == 202


async def test_a_retry_of_an_existing_job_is_answered_with_the_job(make: Make) -> None:
    """A retry (the job's own id, or an Idempotency-Key) gets its job back whatever the
    limits say: the full path answers it, never the replay."""
    async with make() as gw:
        mine = await gw.job(id="mine")
        keyed = await gw.job(headers={"Idempotency-Key": "k1"})
        assert (mine.status_code, keyed.status_code) == (202, 202)
        assert (await gw.job()).status_code == 429  # spent: remembered
        again = await gw.job(id="mine")
        assert again.status_code == 202 and again.json()["id"] == mine.json()["id"]
        retried = await gw.job(headers={"Idempotency-Key": "k1"})
        assert retried.status_code == 202 and retried.json()["id"] == keyed.json()["id"]


async def test_an_image_window_with_room_lets_a_smaller_request_try(make: Make) -> None:
    async with make(access=access(requests="100/minute", images="3/minute")) as gw:
        assert (await gw.job(n=2)).status_code == 202
        assert (await gw.job(n=2)).status_code == 429  # 1 image left: remembered
        checks = len(gw.checks)
        assert (await gw.job(n=3)).status_code == 429
        assert len(gw.checks) == checks  # more than remain: replayed
        assert (await gw.job(n=1)).status_code == 202  # fits: the full path, admitted
        assert len(gw.checks) == checks + 1
        # The images taken made the remembered counts stale: the full way again, which
        # says what remains now (0).
        refused = await gw.job(n=1)
        assert refused.status_code == 429 and len(gw.checks) == checks + 2
        assert refused.headers["x-ratelimit-remaining-images"] == "0"


async def test_a_revoked_key_is_refused_as_revoked(make: Make) -> None:
    async with make() as gw:
        for _ in range(3):
            await gw.job()
        key_id = gw.store.accounts.list_api_keys()[0].id
        assert (await gw.admin("POST", f"/admin/keys/{key_id}/revoke")).status_code == 200
        refused = await gw.job()
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_an_account_not_rolled_in_is_refused_early_until_the_flag_changes(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollout's 403 is a function of the flag and the account: answered early for
    a cached key, as the full path words it, and gone the moment the flag changes."""
    full_checks: list[str] = []
    real = jobs.check_feature

    def counted(services: Any, account: Any, spec: Any) -> None:
        full_checks.append(account.id)
        real(services, account, spec)

    monkeypatch.setattr(jobs, "check_feature", counted)
    flags = {"generate": {"tiers": ["free"], "percent": 0}}
    async with make(access={**access(), "features": flags}) as gw:
        first = await gw.job()  # the key is read: the full path
        again = await gw.job()
        assert (first.status_code, again.status_code) == (403, 403)
        assert again.json() == first.json()
        assert again.json()["error"]["code"] == "feature_not_available"
        assert len(full_checks) == 1 and gw.checks == []  # no rate limit was counted
        rolled = await gw.admin("PATCH", "/admin/features/generate", {"percent": 100})
        assert rolled.status_code == 200
        assert (await gw.job()).status_code == 202


async def test_switched_off_every_request_goes_the_full_way(make: Make) -> None:
    async with make(replay_refusals=False) as gw:
        statuses = [(await gw.job()).status_code for _ in range(4)]
        assert statuses == [202, 202, 429, 429]
        assert len(gw.checks) == 4


@pytest.mark.parametrize(
    ("body", "images"),
    [
        (b'{"prompt": "x"}', 1),
        (b'{"prompt": "x", "n": 3}', 3),
        (b'{"prompt": "x", "id": "mine"}', None),  # a retry: the full path finds the job
        (b'{"prompt": "x", "n": 0}', None),  # invalid: the full path says why
        (b'{"prompt": "x", "n": true}', None),
        (b'{"prompt": "x", "n": null}', None),
        (b'["x"]', None),
        (b"not json", None),
        (None, None),  # too large, or the client went away
    ],
)
def test_only_plain_json_job_bodies_are_replayed(body: bytes | None, images: int | None) -> None:
    assert _images_asked(body) == images
