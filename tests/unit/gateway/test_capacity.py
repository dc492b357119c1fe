"""Admission's capacity comes from the workers' reports (gateway/access/capacity.py), and
operators see the live workers at GET /admin/workers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from daguerre.config import PoolSettings, Settings
from daguerre.domain import JobSpec
from daguerre.gateway.access.admission import Admission
from daguerre.gateway.access.capacity import reported_throughput
from daguerre.gateway.access.controls import LiveControls
from daguerre.store import Store, open_store
from daguerre.store.tables import JobRow, WorkerRow, utcnow
from daguerre.store.workers import WorkerReport, staleness_s
from tests.unit.gateway.conftest import running_gateway

ADMIN = "unit-admin"
RENDER_S = 10.0


def worker(worker_id: str, pool: str = "api", **fields: Any) -> WorkerReport:
    base: dict[str, Any] = {"host": "gpu-1", "pid": 7, "slots": 12, "batch_images": 8}
    return WorkerReport(id=worker_id, pool=pool, **{**base, **fields})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    pools = {"api": PoolSettings(task_queue="api", processes=2)}
    return Settings(
        data_dir=tmp_path, pools=pools, product_pools={"api": "api"}, worker_report_s=5.0
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    # Two renders of the pool that took RENDER_S each: too few to measure a throughput.
    owner = store.accounts.create_account("done", "pro", "api").id
    for i in range(2):
        store.jobs.create(f"done-{i}", owner, "api", JobSpec(prompt="x", model="builtin"))
        store.jobs.mark_running(f"done-{i}", 4, None)
        store.jobs.complete(f"done-{i}", [])
    with store.db.begin() as conn:
        started = utcnow() - timedelta(seconds=RENDER_S)
        conn.execute(update(JobRow).values(started_at=started, finished_at=utcnow()))
    yield store
    store.close()


def admission(settings: Settings, store: Store, registry: Any = None) -> Admission:
    controls = LiveControls(settings, store.controls)
    return Admission(settings, store.queue_stats, controls, registry or store.workers)


def test_a_pools_capacity_sums_its_workers_paces_or_batch_budgets() -> None:
    paced = worker("a", images_per_s=2.5)
    fresh = worker("b", batch_images=4)  # has not rendered: its budget over the render time
    assert reported_throughput([paced, fresh], render_s=8.0) == pytest.approx(2.5 + 4 / 8)
    assert reported_throughput([paced, fresh], render_s=None) == pytest.approx(2.5)
    assert reported_throughput([fresh], render_s=None) is None


def test_without_reports_admission_keeps_the_launchers_guess(
    settings: Settings, store: Store
) -> None:
    # processes=2, one render at a time each, RENDER_S per render.
    assert admission(settings, store).throughput("api") == pytest.approx(2 / RENDER_S, rel=0.01)


def test_live_workers_replace_the_guess_wherever_they_run(settings: Settings, store: Store) -> None:
    store.workers.report(worker("gpu-1:1:aa", batch_images=8))
    store.workers.report(worker("gpu-2:1:bb", host="gpu-2", images_per_s=3.0))
    store.workers.report(worker("other-pool", pool="chat", images_per_s=100.0))
    expected = 8 / RENDER_S + 3.0
    assert admission(settings, store).throughput("api") == pytest.approx(expected, rel=0.01)


def test_a_stale_worker_counts_for_nothing(settings: Settings, store: Store) -> None:
    store.workers.report(worker("gone", images_per_s=50.0))
    with store.db.begin() as conn:
        old = utcnow() - timedelta(seconds=staleness_s(settings.worker_report_s) + 1)
        conn.execute(update(WorkerRow).values(updated_at=old))
    assert admission(settings, store).capacity("api") == pytest.approx(2 / RENDER_S, rel=0.01)


def test_an_unreadable_registry_falls_back_to_the_guess(settings: Settings, store: Store) -> None:
    class Broken:
        def live(self, pool: str | None, max_age_s: float) -> list[WorkerReport]:
            raise ConnectionError("database away")

    guess = admission(settings, store, Broken()).capacity("api")
    assert guess == pytest.approx(2 / RENDER_S, rel=0.01)


async def test_operators_list_the_live_workers_per_pool(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_key=ADMIN)
    async with running_gateway(settings) as gw:
        gw.store.workers.report(worker("gpu-1:1:aa", images_per_s=1.5, running=3))
        gw.store.workers.report(worker("gpu-2:9:bb", host="gpu-2", images_per_s=0.5))
        gw.store.workers.report(worker("stray:1:cc", pool="stray"))
        refused = await gw.client.get("/admin/workers", headers=gw.auth())
        assert refused.status_code == 403
        assert (await gw.client.get("/admin/workers")).status_code == 401
        answer = await gw.client.get("/admin/workers", headers=gw.auth(ADMIN))
        assert answer.status_code == 200
        pools = {p["pool"]: p for p in answer.json()}
        assert list(pools) == [*settings.pools, "stray"]
        api = pools["api"]
        assert [w["id"] for w in api["workers"]] == ["gpu-1:1:aa", "gpu-2:9:bb"]
        assert (api["slots"], api["batch_images"], api["images_per_s"]) == (24, 16, 2.0)
        assert api["workers"][0]["running"] == 3 and api["workers"][1]["host"] == "gpu-2"
        assert pools["chat"]["workers"] == [] and pools["chat"]["images_per_s"] is None
        spec = (await gw.client.get("/openapi.json")).json()
        assert "get" in spec["paths"]["/admin/workers"]


def test_the_cli_shows_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from typer.testing import CliRunner

    from daguerre.cli import app

    calls: list[tuple[str, str]] = []

    def request(method: str, url: str, **_: object) -> httpx.Response:
        calls.append((method, url))
        return httpx.Response(200, json=[{"pool": "api", "workers": [], "slots": 0}])

    monkeypatch.setattr(httpx, "request", request)
    result = CliRunner().invoke(app, ["admin", "workers", "--key", "k", "--server", "http://gw"])
    assert result.exit_code == 0 and '"pool": "api"' in result.output
    assert calls == [("GET", "http://gw/admin/workers")]
