"""What the operator page reads and writes: ``GET /admin/overview`` (one read per
refresh), and the audit log every mutating admin route writes (``GET /admin/audit``).
A gateway on the ASGI transport, with a fake engine that renders nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from daguerre.config import Settings
from daguerre.domain import JobSpec
from daguerre.gateway.app import create_app
from daguerre.store import Store, open_store
from daguerre.store.workers import WorkerReport
from tests.support.engine import FakeEngine
from tests.unit.gateway.test_access import ADMIN, access

SPEC = JobSpec(prompt="x", model="builtin")


class Ops:
    def __init__(self, http: httpx.AsyncClient, store: Store) -> None:
        self.http, self.store = http, store
        free = store.accounts.create_account("free", "free", "chat")
        self.free_key = store.accounts.create_api_key(free.id)

    async def admin(self, method: str, path: str, body: Any = None, key: str = ADMIN) -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        answer = await self.http.request(method, path, json=body, headers=headers)
        return answer

    async def free_job(self) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.free_key}"}
        return await self.http.post("/v1/jobs", json={"prompt": "x"}, headers=headers)


@pytest.fixture
async def ops(tmp_path: Path) -> AsyncIterator[Ops]:
    settings = Settings(data_dir=tmp_path, admin_key=ADMIN, access=access(), admission_cache_s=0)
    store = open_store(settings)
    app = create_app(settings, workflows=FakeEngine(store, render=False), store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http,
    ):
        yield Ops(http, store)
    store.close()


async def test_every_change_is_audited_with_who_what_and_when(ops: Ops) -> None:
    changes = [
        ("PATCH", "/admin/tiers/free", {"requests": "1/minute"}),
        ("PATCH", "/admin/features/edit", {"percent": 25}),
        ("PUT", "/admin/pools/chat/degraded", {"mode": "on"}),
        ("PUT", "/admin/pools/chat/pace", {"pace": 2}),
        ("DELETE", "/admin/tiers/free", None),
    ]
    for method, path, body in changes:
        assert (await ops.admin(method, path, body)).status_code == 200, path
    # Refused changes change nothing, and so are not recorded.
    assert (await ops.admin("PATCH", "/admin/tiers/free", {"requests": "lots"})).status_code == 400
    assert (await ops.admin("PUT", "/admin/pools/nope/pace", {"pace": 1})).status_code == 404
    audit = (await ops.admin("GET", "/admin/audit")).json()
    assert [(e["action"], e["change"]) for e in audit] == [
        ("DELETE /admin/tiers/free", None),
        ("PUT /admin/pools/chat/pace", {"pace": 2.0}),
        ("PUT /admin/pools/chat/degraded", {"mode": "on"}),
        ("PATCH /admin/features/edit", {"percent": 25.0}),
        ("PATCH /admin/tiers/free", {"requests": "1/minute"}),
    ]
    assert {e["actor"] for e in audit} == {"admin-key"}
    assert audit[0]["created_at"] >= audit[-1]["created_at"]
    assert len((await ops.admin("GET", "/admin/audit?limit=2")).json()) == 2


async def test_an_admin_scoped_key_is_recorded_by_its_account_and_no_secret_is(ops: Ops) -> None:
    operator = ops.store.accounts.create_account("ops", "admin", "api")
    key = ops.store.accounts.create_api_key(operator.id)
    account = ops.store.accounts.create_account("someone", "pro", "api")
    made = await ops.admin("POST", "/admin/keys", {"account": account.id, "label": "ci"}, key)
    assert made.status_code == 201
    rotated = await ops.admin("POST", f"/admin/keys/{made.json()['id']}/rotate", None, key)
    revoked = await ops.admin("POST", f"/admin/keys/{rotated.json()['id']}/revoke", None, key)
    assert revoked.status_code == 200
    audit = (await ops.admin("GET", "/admin/audit", key=key)).json()
    assert [e["actor"] for e in audit] == [operator.id] * 3
    assert audit[2]["change"] == {"account": account.id, "label": "ci", "key_id": made.json()["id"]}
    assert audit[1]["change"] == {"key_id": rotated.json()["id"]}
    assert audit[0]["action"] == f"POST /admin/keys/{rotated.json()['id']}/revoke"
    text = str(audit)
    assert made.json()["key"] not in text and rotated.json()["key"] not in text


async def test_the_operator_reads_need_an_admin_key(ops: Ops) -> None:
    for path in ("/admin/overview", "/admin/audit"):
        assert (await ops.http.get(path)).status_code == 401
        assert (await ops.admin("GET", path, key=ops.free_key)).status_code == 403


async def test_the_overview_shows_backlog_by_priority_and_batch_occupancy(ops: Ops) -> None:
    owner = ops.store.accounts.create_account("load", "pro", "chat").id
    for i, priority in enumerate((1, 1, 3)):
        ops.store.jobs.create(f"j{i}", owner, "chat", SPEC, priority=priority)
    for worker, running in (("w1", 3), ("w2", 1)):
        ops.store.workers.report(
            WorkerReport(worker, "chat", "host", 1, slots=8, batch_images=4, running=running)
        )
    overview = (await ops.admin("GET", "/admin/overview")).json()
    chat = next(p for p in overview["pools"] if p["pool"] == "chat")
    assert chat["backlog"] == 3 and chat["backlog_by_priority"] == {"1": 2, "3": 1}
    assert (chat["workers"], chat["batch_running"], chat["batch_images"]) == (2, 4, 8)
    assert chat["batch_occupancy"] == 0.5 and chat["degraded_mode"] == "auto"
    api = next(p for p in overview["pools"] if p["pool"] == "api")
    assert api["batch_occupancy"] is None  # no live worker: unknown, not 0 %
    assert [t["name"] for t in overview["tiers"]] == ["pro", "free"]  # by priority
    flags = {f["name"]: f for f in overview["features"]}
    assert flags["edit"]["percent"] == 0 and not flags["edit"]["overridden"]


async def test_a_lowered_limit_shows_in_the_overview_with_the_429_it_causes(ops: Ops) -> None:
    def free(overview: dict[str, Any]) -> dict[str, Any]:
        return next(t for t in overview["tiers"] if t["name"] == "free")

    before = free((await ops.admin("GET", "/admin/overview")).json())
    assert before["requests"] == "5/minute" and before["refused_429"] == {}
    assert (await ops.free_job()).status_code == 202
    await ops.admin("PATCH", "/admin/tiers/free", {"requests": "1/minute"})
    assert (await ops.free_job()).status_code == 202  # a changed limit starts a fresh window
    assert (await ops.free_job()).status_code == 429
    after = free((await ops.admin("GET", "/admin/overview")).json())
    assert after["requests"] == "1/minute" and after["overridden"]
    assert after["refused_429"] == {"rate_limit_exceeded": 1}
    assert (after["deferred_recent"], after["deferred_waiting"]) == (0, 0)


async def test_deferred_free_work_shows_per_tier(ops: Ops) -> None:
    owner = ops.store.accounts.create_account("load", "pro", "chat").id
    for i in range(5):  # about 5 jobs a second, and 100 waiting: a 20 s wait > 10 s
        ops.store.jobs.create(f"done{i}", owner, "chat", SPEC)
        ops.store.jobs.mark_running(f"done{i}", 4, None)
        ops.store.jobs.complete(f"done{i}", [])
    for i in range(100):
        ops.store.jobs.create(f"wait{i}", owner, "chat", SPEC, priority=3)
    answer = await ops.free_job()
    assert answer.status_code == 202 and answer.json()["status"] == "deferred"
    overview = (await ops.admin("GET", "/admin/overview")).json()
    free = next(t for t in overview["tiers"] if t["name"] == "free")
    assert (free["deferred_recent"], free["deferred_waiting"]) == (1, 1)
    chat = next(p for p in overview["pools"] if p["pool"] == "chat")
    assert chat["backlog_by_priority"] == {"3": 100, "5": 1}  # deferred work waits last
