"""A real worker (Temporal, its engine in a process of its own) reports itself to the
worker registry and serves its health and metrics endpoint while it renders a job."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
from temporalio.client import Client

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.domain import JobSpec, JobStatus
from daguerre.engine.client import TemporalWorkflowClient
from daguerre.store import open_store
from daguerre.workers.worker import pool_workers
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_terminal
from tests.support.stack import StackConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in the scrape")


async def test_a_worker_reports_itself_and_serves_its_metrics(
    tmp_path: Path, temporal_address: str, temporal_client: Client
) -> None:
    port = free_port()
    values = {"worker_metrics_port": port, "worker_report_s": 0.2}
    settings = StackConfig(tmp_path, unique_tag(), temporal_address, values=values).settings()
    store = open_store(settings)
    account = store.accounts.create_account("a", "free", "api")
    engine = TemporalWorkflowClient(settings, temporal_client)
    async with (
        pool_workers(settings, "api", temporal_client),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        spec = JobSpec(prompt="fine", model="fake", width=64, height=64, steps=6)
        store.jobs.create("obs-1", account.id, "api", spec)
        await engine.submit("obs-1", spec, "api", 3, account.id, tier="pro")
        assert (await wait_terminal(store, "obs-1")).status is JobStatus.SUCCEEDED
        text = ""
        for _ in range(100):  # the engine's stats and the next report follow the render
            text = (await http.get("/metrics")).text
            [row] = store.workers.live("api", 5.0)
            if metric(text, "daguerre_worker_step_seconds_count") >= 6 and row.images_per_s:
                break
            await asyncio.sleep(0.05)
        assert metric(text, 'daguerre_job_wait_seconds_count{pool="api",tier="pro"}') == 1
        assert metric(text, 'daguerre_job_render_seconds_count{pool="api",tier="pro"}') == 1
        assert metric(text, "daguerre_worker_engine_up") == 1
        # The engine process's own memory: a separate process holding the model.
        assert metric(text, 'daguerre_worker_model_memory_bytes{kind="rss"}') > 2**20
        assert row.pool == "api" and row.batch_images >= 1 and row.images_per_s
        assert row.slots == row.batch_images + settings.pools["api"].waiting_room
    assert store.workers.live("api", 5.0) == []  # it said goodbye
    store.close()
