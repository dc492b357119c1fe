"""Rate limits, rollout, admission (queue, defer, reject, cap), degraded mode, the admin
API and metrics, on the ASGI transport with a fake engine that renders nothing (so
jobs stay queued and the backlog is what the test makes it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from daguerre.config import Settings
from daguerre.domain import JobSpec
from daguerre.gateway.access import admission
from daguerre.gateway.access.admission import Pace
from daguerre.gateway.access.ratelimit import openai_duration
from daguerre.gateway.app import create_app
from daguerre.store import Store, open_store
from tests.support.engine import FakeEngine
from tests.support.frozen_clock import FrozenClock

ADMIN = "unit-admin"


def access(**free: Any) -> dict[str, Any]:
    return {
        "tiers": {
            "free": {
                "priority": 3,
                "requests": "5/minute",
                "images": "6/minute",
                "wait_budget_s": 10,
                "over_budget": "defer",
                "admit_past_cap": False,
                "degraded": {"steps": 2, "partial_images": 0},
                **free,
            },
            "pro": {
                "priority": 1,
                "fairness_weight": 4,
                "requests": "100/minute",
                "images": "100/minute",
                "wait_budget_s": 10,
                "over_budget": "reject",
            },
        },
        "features": {"generate": {"percent": 100}, "edit": {"percent": 0}},
    }


class Client:
    def __init__(self, http: httpx.AsyncClient, store: Store, engine: FakeEngine) -> None:
        self.http, self.store, self.engine = http, store, engine
        self.keys: dict[str, str] = {}

    def key(self, tier: str) -> str:
        if tier not in self.keys:
            account = self.store.accounts.create_account(tier, tier, "api")
            self.keys[tier] = self.store.accounts.create_api_key(account.id)
        return self.keys[tier]

    async def job(self, tier: str, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key(tier)}"}
        return await self.http.post("/v1/jobs", json={"prompt": "x", **body}, headers=headers)

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return await self.http.request(method, path, json=body, headers=headers)

    def backlog(self, count: int, priority: int) -> None:
        """``count`` queued jobs of another account, at ``priority``."""
        owner = self.store.accounts.create_account("load", "pro", "api").id
        for i in range(count):
            self.store.jobs.create(f"load-{priority}-{i}", owner, "api", SPEC, priority=priority)

    def throughput(self, finished: int) -> None:
        """``finished`` jobs that just finished: about that many per second."""
        owner = self.store.accounts.create_account("done", "pro", "api").id
        for i in range(finished):
            self.store.jobs.create(f"done-{i}", owner, "api", SPEC)
            self.store.jobs.mark_running(f"done-{i}", 4, None)
            self.store.jobs.complete(f"done-{i}", [])


SPEC = JobSpec(prompt="load", model="builtin")
Make = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Client]:
        # Jobs the tests add behind the gateway's back count at once, unless a test
        # is about the admission snapshot itself.
        values.setdefault("admission_cache_s", 0)
        settings = Settings(
            data_dir=tmp_path,
            admin_key=ADMIN,
            access=values.pop("access", access()),
            **values,
        )
        store = open_store(settings)
        engine = FakeEngine(store, render=False)
        app = create_app(settings, workflows=engine, store=store)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
        ):
            yield Client(http, store, engine)

    return factory


async def test_rate_limit_headers_and_429(make: Make) -> None:
    async with make() as gw:
        first = await gw.job("free")
        assert first.status_code == 202
        assert first.headers["x-ratelimit-limit-requests"] == "5"
        assert first.headers["x-ratelimit-remaining-requests"] == "4"
        assert first.headers["x-ratelimit-limit-images"] == "6"
        assert first.headers["x-ratelimit-remaining-images"] == "5"
        assert first.headers["x-ratelimit-reset-requests"].endswith("s")
        assert (await gw.job("free", n=4)).status_code == 202
        refused = await gw.job("free", n=2)  # 1 + 4 + 2 images > 6
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert "images" in error["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-ratelimit-remaining-images"] == "1"


def test_openai_durations() -> None:
    assert [openai_duration(s) for s in (0.02, 1, 59.2, 360)] == ["20ms", "1s", "1m0s", "6m0s"]


async def test_priority_fairness_and_tier_defaults_reach_the_engine(make: Make) -> None:
    async with make() as gw:
        free = await gw.job("free")
        pro = await gw.job("pro")
        assert free.json()["tier"] == "free" and pro.json()["tier"] == "pro"
        (free_id, _, free_priority, free_key), (pro_id, _, pro_priority, _) = gw.engine.submitted
        assert (free_priority, pro_priority) == (3, 1)
        assert free_key == gw.store.accounts.authenticate(gw.key("free")).id  # type: ignore[union-attr]
        assert gw.engine.weights[pro_id] == 4 and gw.engine.weights[free_id] == 1


async def test_over_budget_reject_tier_gets_429_with_retry_after(make: Make) -> None:
    async with make() as gw:
        gw.throughput(5)  # about 5 jobs/s
        gw.backlog(100, priority=1)  # 100 paid jobs ahead: about 20 s
        refused = await gw.job("pro")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "queue_full"
        assert 5 <= int(refused.headers["Retry-After"]) <= 60
        # Free jobs do not count against paid ones: a free backlog leaves pro alone.


async def test_over_budget_defer_tier_is_accepted_as_deferred(make: Make) -> None:
    async with make() as gw:
        gw.throughput(5)
        gw.backlog(100, priority=3)
        accepted = await gw.job("free")
        assert accepted.status_code == 202
        body = accepted.json()
        assert body["status"] == "deferred"
        assert body["queue_position"] == 100 and body["estimated_wait_s"] > 10
        assert gw.engine.submitted[-1][2] == 5  # the lowest priority key
        # A paid job is unaffected by the free backlog.
        pro = await gw.job("pro")
        assert pro.status_code == 202 and pro.json()["status"] == "queued"
        assert pro.json()["queue_position"] == 0


async def test_backlog_cap_admits_only_paid_tiers(make: Make) -> None:
    pools = {"chat": {}, "api": {"max_backlog": 10}}
    async with make(pools=pools) as gw:
        gw.backlog(10, priority=3)
        refused = await gw.job("free")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "capacity_exceeded"
        assert "Retry-After" in refused.headers
        assert (await gw.job("pro")).status_code == 202


def test_pace_lets_a_burst_through_then_admits_at_its_rate() -> None:
    pace = Pace()
    assert [pace.take(rate=2.0, burst=2.0, now=10.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert pace.take(2.0, 2.0, now=10.5) == 0.0  # a token every 0.5 s
    # However long it was idle, it holds no more than the burst.
    assert [pace.take(2.0, 2.0, now=100.0) for _ in range(3)] == [0.0, 0.0, 0.5]


async def test_an_operator_paces_free_admissions_live(make: Make) -> None:
    free = access(requests="100/minute", images="100/minute")
    async with make(access=free) as gw:
        gw.throughput(5)  # about 5 jobs/s
        assert (await gw.job("free")).status_code == 202  # no pace unless configured
        paced = await gw.admin("PUT", "/admin/pools/api/pace", {"pace": 0.1})  # 0.5 jobs/s
        assert paced.status_code == 200 and paced.json()["admit_pace"] == 0.1
        answers = [await gw.job("free") for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 429, 429]
        assert answers[1].json()["error"]["code"] == "admission_paced"
        assert 1 <= int(answers[1].headers["Retry-After"]) <= 2  # a token every 2 s
        assert (await gw.job("pro")).status_code == 202  # paid tiers are never paced
        metrics = (await gw.http.get("/metrics")).text
        assert any(
            line.startswith("daguerre_jobs_rejected_total") and 'reason="admission_paced"' in line
            for line in metrics.splitlines()
        )

        assert (await gw.admin("PUT", "/admin/pools/api/pace", {"pace": -1})).status_code == 400
        assert (await gw.admin("PUT", "/admin/pools/nope/pace", {"pace": 1})).status_code == 404
        back = await gw.admin("PUT", "/admin/pools/api/pace", {"pace": None})
        assert back.json()["admit_pace"] == 0.0  # the configured pace: none
        assert (await gw.job("free")).status_code == 202


async def test_degraded_mode_follows_the_backlog_and_the_operator(make: Make) -> None:
    pools = {"chat": {}, "api": {"degrade_backlog": 5}}
    async with make(pools=pools) as gw:
        normal = await gw.job("free")
        assert normal.json()["degraded"] is False
        forced = await gw.admin("PUT", "/admin/pools/api/degraded", {"mode": "on"})
        assert forced.status_code == 200 and forced.json()["degraded"] is True
        reduced = await gw.job("free")
        assert reduced.json()["degraded"] is True
        job = gw.store.jobs.get(reduced.json()["id"])
        assert job is not None and job.spec.steps == 2 and job.degraded
        assert (await gw.job("pro")).json()["degraded"] is False  # paid: never reduced

        await gw.admin("PUT", "/admin/pools/api/degraded", {"mode": "auto"})
        gw.backlog(6, priority=3)
        assert (await gw.job("free")).json()["degraded"] is True
        metrics = (await gw.http.get("/metrics")).text
        assert 'daguerre_degraded_mode{pool="api"} 1.0' in metrics
        await gw.admin("PUT", "/admin/pools/api/degraded", {"mode": "off"})
        assert (await gw.job("free")).json()["degraded"] is False


async def test_rollout_refuses_with_a_clear_403(make: Make) -> None:
    async with make() as gw:
        changed = await gw.admin("PATCH", "/admin/features/generate", {"tiers": ["pro"]})
        assert changed.status_code == 200
        refused = await gw.job("free")
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "feature_not_available"
        assert "not yet available on your plan (free)" in error["message"]
        assert (await gw.job("pro")).status_code == 202


async def test_free_accounts_roll_in_at_their_own_share_while_paid_keep_the_feature(
    make: Make,
) -> None:
    async with make() as gw:
        closed = {"tier_percent": {"free": 0}}
        changed = await gw.admin("PATCH", "/admin/features/generate", closed)
        assert changed.status_code == 200 and changed.json()["tier_percent"] == {"free": 0.0}
        assert (await gw.job("free")).json()["error"]["code"] == "feature_not_available"
        assert (await gw.job("pro")).status_code == 202
        opened = {"tier_percent": {"free": 100}, "percent": 0}
        assert (await gw.admin("PATCH", "/admin/features/generate", opened)).status_code == 200
        assert (await gw.job("free")).status_code == 202
        assert (await gw.job("pro")).status_code == 403
        bad = await gw.admin("PATCH", "/admin/features/generate", {"tier_percent": {"free": 150}})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "tier_percent.free"


async def test_admin_api_needs_an_admin_key_and_validates(make: Make) -> None:
    async with make() as gw:
        headers = {"Authorization": f"Bearer {gw.key('pro')}"}
        assert (await gw.http.get("/admin/access", headers=headers)).status_code == 403
        assert (await gw.http.get("/admin/access")).status_code == 401
        admin_account = gw.store.accounts.create_account("ops", "admin", "api")
        ops = {"Authorization": f"Bearer {gw.store.accounts.create_api_key(admin_account.id)}"}
        assert (await gw.http.get("/admin/pools", headers=ops)).status_code == 200
        bad = await gw.admin("PATCH", "/admin/tiers/free", {"requests": "lots"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "requests"
        bad = await gw.admin("PATCH", "/admin/tiers/free", {"over_budget": "maybe"})
        assert bad.status_code == 400
        ok = await gw.admin("PATCH", "/admin/tiers/free", {"requests": "1/minute"})
        assert ok.status_code == 200
        assert (await gw.job("free")).status_code == 202
        assert (await gw.job("free")).status_code == 429
        shown = (await gw.admin("GET", "/admin/access")).json()
        assert shown["overrides"] == {"tier:free": {"requests": "1/minute"}}
        assert (await gw.admin("DELETE", "/admin/tiers/free")).json()["requests"] == "5/minute"


async def test_metrics_count_admissions_and_refusals(make: Make) -> None:
    async with make() as gw:
        await gw.job("pro")
        await gw.admin("PATCH", "/admin/features/generate", {"enabled": False})
        assert (await gw.job("free")).json()["error"]["code"] == "feature_disabled"
        text = (await gw.http.get("/metrics")).text
        assert 'daguerre_jobs_admitted_total{pool="api",tier="pro"} 1.0' in text
        assert 'reason="feature_disabled",tier="free"} 1.0' in text
        # The one replica here holds the queue-depth lease: the pro job waits at key 1.
        assert 'daguerre_queue_depth{pool="api",priority="1",status="queued"} 1.0' in text
        assert "daguerre_queue_exporter 1.0" in text


async def test_a_webhook_needs_no_servers_secret(make: Make) -> None:
    # Each account signs with its own secret now (GET /v1/webhooks/secret).
    async with make() as gw:
        accepted = await gw.job("pro", webhook_url="https://example.com/hook")
        assert accepted.status_code == 202
        refused = await gw.job("pro", webhook_url="http://127.0.0.1/hook")
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "webhook_url"


async def test_a_job_keeps_its_webhook(make: Make) -> None:
    async with make(webhook_secret="s") as gw:
        accepted = await gw.job("pro", webhook_url="https://example.com/hook")
        assert accepted.status_code == 202
        job = gw.store.jobs.get(accepted.json()["id"])
        assert job is not None and job.webhook_url == "https://example.com/hook"
        bad = await gw.job("pro", webhook_url="ftp://example.com/hook")
        assert bad.status_code == 400


async def test_the_synchronous_openai_endpoint_is_refused_rather_than_deferred(
    make: Make,
) -> None:
    async with make() as gw:
        gw.throughput(5)
        gw.backlog(100, priority=3)
        headers = {"Authorization": f"Bearer {gw.key('free')}"}
        body = {"prompt": "x", "size": "64x64"}
        refused = await gw.http.post("/v1/images/generations", json=body, headers=headers)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "queue_full"
        assert int(refused.headers["Retry-After"]) >= 1


async def test_admission_reads_a_short_lived_backlog_snapshot_plus_its_own_admissions(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The snapshot ages as the test says, not with how slowly a busy CI machine answers.
    clock = FrozenClock()
    monkeypatch.setattr(admission, "time", clock)
    pools = {"chat": {}, "api": {"max_backlog": 4}}
    free = access(requests="100/minute", images="100/minute")
    async with make(pools=pools, access=free, admission_cache_s=0.3) as gw:
        first = await gw.job("free")  # reads the snapshot: nothing waiting
        assert first.status_code == 202
        gw.backlog(5, priority=3)  # e.g. admitted by another gateway, just now
        # Its own admissions count at once, so a burst cannot pass the cap unseen.
        answers = [(await gw.job("free")).status_code for _ in range(4)]
        assert answers == [202, 202, 202, 429]
        # Room frees up (here: jobs go away); a snapshot errs on the safe side ...
        for i in range(5):
            gw.store.jobs.discard(f"load-3-{i}")
        gw.store.jobs.discard(first.json()["id"])
        clock.now += 0.29
        assert (await gw.job("free")).status_code == 429
        # ... until it is read again.
        clock.now += 0.02
        assert (await gw.job("free")).status_code == 202
