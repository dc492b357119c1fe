"""The Temporal server killed with kill -9 and restarted on the same database: every
queued and running job still completes, and nothing is lost."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import anyio

from daguerre.domain import JobSpec, JobStatus
from daguerre.engine.client import TemporalWorkflowClient
from daguerre.launcher import temporal_binary
from daguerre.procs import port_open
from daguerre.store import Store, open_store
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_terminal, workflow_status
from tests.support.stack import StackConfig, free_port, start_worker, wait_until


def start_server(port: int, db: Path, log: Path) -> subprocess.Popen[bytes]:
    args = [
        str(temporal_binary()), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--headless", "--log-level", "error",
        "--db-filename", str(db),
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    wait_until(lambda: port_open("127.0.0.1", port), 30, "the Temporal server did not start")
    return proc


async def wait_any_running(store: Store, ids: list[str], timeout_s: float = 60) -> None:
    """Until one job (whichever the worker took first) is a few steps in."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        jobs = [await anyio.to_thread.run_sync(store.jobs.get, i) for i in ids]
        if any(j is not None and j.step >= 3 for j in jobs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no job started rendering")


async def test_kill_9_server_and_restart_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    db, log = tmp_path / "temporal.db", tmp_path / "temporal.log"
    server = start_server(port, db, log)
    config = StackConfig(
        tmp_path,
        unique_tag(),
        f"127.0.0.1:{port}",
        values={"checkpoint_interval_s": 0.1, "heartbeat_timeout_s": 3.0},
        step_delay_s=0.05,
        pool={"batch_images": 2},  # so that some jobs still wait when the server dies
    )
    settings = config.settings()
    store = open_store(settings)
    engine = TemporalWorkflowClient(settings)
    account = store.accounts.create_account("a", "free", "api")
    worker = start_worker(config, "api", tmp_path)
    ids = [f"srv-{i}" for i in range(6)]
    try:
        for job_id in ids:
            spec = JobSpec(prompt=job_id, model="fake", width=64, height=64, steps=10)
            store.jobs.create(job_id, account.id, "api", spec)
            await engine.submit(job_id, spec, "api", 3, account.id)
        await wait_any_running(store, ids)
        server.kill()
        server.wait()
        statuses = [store.jobs.get(i).status for i in ids]  # type: ignore[union-attr]
        assert JobStatus.QUEUED in statuses, statuses  # some were still waiting
        await asyncio.sleep(1.0)
        server = start_server(port, db, log)
        jobs = [await wait_terminal(store, job_id, timeout_s=90) for job_id in ids]
        assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * len(ids), [j.error for j in jobs]
        assert all(len(j.images) == 1 for j in jobs)
        for job_id in ids:  # and Temporal agrees
            assert await workflow_status(engine, job_id, "COMPLETED") == "COMPLETED"
    finally:
        worker.stop()
        server.kill()
        server.wait()
        store.close()
