"""A worker's health and metrics endpoint (workers/endpoint.py), on a free port in this
process, in front of real render activities whose engine core runs in a thread, and its
reports to the worker registry (workers/registration.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.config import PoolSettings, Settings
from daguerre.store import Store
from daguerre.workers.activities import RenderActivities, render_activities
from daguerre.workers.endpoint import WorkerEndpoint, WorkerHealth, worker_endpoint
from daguerre.workers.engine_client import ThreadDriver, build_core
from daguerre.workers.metrics import WorkerMetrics
from daguerre.workers.registration import Registration, registered
from tests.unit.workers.test_activities import env_with, submit


class FakeTemporal:
    """What the health check asks of a Temporal client: ``service_client.check_health``."""

    def __init__(self) -> None:
        self.up = True
        self.service_client = self

    async def check_health(self, **_: Any) -> bool:
        return self.up


@dataclass
class Worker:
    acts: RenderActivities
    health: WorkerHealth
    temporal: FakeTemporal
    http: httpx.AsyncClient
    store: Store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, model="fake", model_options={"step_delay_s": 0.002})


@pytest.fixture
async def worker(settings: Settings, store: Store) -> AsyncIterator[Worker]:
    pool = PoolSettings()
    core, info = build_core(settings, pool)
    temporal = FakeTemporal()
    health = WorkerHealth(temporal, store, WorkerMetrics(pool="api"))  # type: ignore[arg-type]
    health.metrics.capacity(info.batch_images, info.batch_images)
    endpoint = WorkerEndpoint(health)
    port = await endpoint.start("127.0.0.1", 0)
    async with (
        render_activities(store, settings, pool, ThreadDriver(core, info), health.metrics) as acts,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        health.engine = acts.engine
        yield Worker(acts, health, temporal, http, store)
    await endpoint.close()


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    answer = await http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    values = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_health_and_readiness_follow_temporal_and_the_engine(worker: Worker) -> None:
    assert (await worker.http.get("/healthz")).json() == {"status": "ok"}
    ready = await worker.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"temporal": "ok", "engine": "ok", "database": "ok"}
    worker.temporal.up = False
    away = await worker.http.get("/readyz")
    assert away.status_code == 503 and away.json()["checks"]["temporal"] == "unavailable"
    worker.temporal.up = True
    await worker.acts.engine.stop()  # the engine's core is gone
    down = await worker.http.get("/readyz")
    assert down.status_code == 503
    assert down.json() == {
        "status": "not ready",
        "checks": {"temporal": "ok", "engine": "down", "database": "ok"},
    }
    assert (await scrape(worker.http))["daguerre_worker_engine_up"] == 0
    assert (await worker.http.get("/healthz")).status_code == 200  # alive all the same


async def test_metrics_show_renders_steps_waits_occupancy_and_memory(worker: Worker) -> None:
    inp = replace(submit(worker.store, "j1", steps=8), queued_at=time.time() - 2.0, tier="pro")
    out = await env_with([]).run(worker.acts.render, inp)
    assert out.status == "succeeded"
    values: dict[str, float] = {}
    for _ in range(100):  # the core's last stats come just after the render's end
        values = await scrape(worker.http)
        if values.get("daguerre_worker_step_seconds_count", 0) >= 8:
            break
        await asyncio.sleep(0.05)
    assert values["daguerre_worker_step_seconds_count"] >= 8
    job = '{pool="api",tier="pro"}'
    assert values[f"daguerre_job_wait_seconds_count{job}"] == 1
    assert values[f"daguerre_job_wait_seconds_sum{job}"] >= 2.0
    assert values[f"daguerre_job_render_seconds_count{job}"] == 1
    assert 0 < values[f"daguerre_job_render_seconds_sum{job}"] < 2.0
    # One image alone in the batch each step: the lowest share of the budget.
    occupancy = values['daguerre_worker_batch_occupancy_count{pool="api"}']
    assert occupancy >= 8
    assert values['daguerre_worker_batch_occupancy_sum{pool="api"}'] == pytest.approx(
        occupancy / worker.acts.batch_images
    )
    assert values["daguerre_worker_renders_running"] == 0  # idle again
    assert values["daguerre_worker_renders_paused"] == 0
    assert values["daguerre_worker_engine_up"] == 1
    assert values['daguerre_worker_model_memory_bytes{kind="rss"}'] > 2**20
    assert values["daguerre_worker_pace_images_per_second"] > 0
    assert worker.health.metrics.images_per_s is not None


async def test_other_paths_and_methods_and_garbage_are_refused(worker: Worker) -> None:
    assert (await worker.http.get("/nope")).status_code == 404
    assert (await worker.http.post("/metrics")).status_code == 405
    head = await worker.http.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    port = worker.http.base_url.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NONSENSE\r\n\r\n")
    await writer.drain()
    assert await reader.read() == b""  # closed, unanswered
    writer.close()


async def test_the_endpoint_is_off_unless_a_port_is_set(settings: Settings, store: Store) -> None:
    health = WorkerHealth(FakeTemporal(), store)  # type: ignore[arg-type]
    async with worker_endpoint(settings, health) as port:
        assert port is None
    on = settings.model_copy(update={"worker_metrics_port": 0})
    async with worker_endpoint(on, health) as port, httpx.AsyncClient() as http:
        assert port is not None and port > 0
        ready = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["engine"] == "starting"


async def test_a_worker_reports_itself_until_it_stops(worker: Worker) -> None:
    metrics = worker.health.metrics
    registration = Registration(worker.store, "api", slots=12, batch_images=8, metrics=metrics)
    async with registered(registration, interval_s=0.05):
        [row] = worker.store.workers.live("api")
        assert (row.id, row.slots, row.batch_images) == (registration.worker_id, 12, 8)
        assert row.images_per_s is None  # nothing rendered yet
        metrics.images_per_s, metrics.step_s = 1.25, 0.1
        for _ in range(100):
            [row] = worker.store.workers.live("api")
            if row.images_per_s is not None:
                break
            await asyncio.sleep(0.02)
        assert (row.images_per_s, row.step_s) == (1.25, 0.1)
    assert worker.store.workers.live("api") == []  # gone on a clean stop


async def test_a_report_that_fails_is_logged_and_the_worker_goes_on(
    worker: Worker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(*_: Any) -> None:
        raise ConnectionError("the database is away")

    monkeypatch.setattr(worker.store.workers, "report", away)
    registration = Registration(worker.store, "api", 1, 1, worker.health.metrics)
    async with registered(registration, interval_s=0.01):
        await asyncio.sleep(0.05)  # several failed beats; the block goes on
    assert "could not report worker" in caplog.text
