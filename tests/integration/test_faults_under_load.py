"""kill -9 of the worker, then the gateway, then the Temporal server, under a steady
load, with `daguerre up` restarting each as it does in production (issue 14).

A client submits jobs at a steady pace, each under its own id, and retries until it
gets a 202 (as a client should when the connection drops or the answer is a 503).
Every job that got a 202 must succeed, with exactly the images it asked for, and none
may be there twice: one row per job, one image set per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from daguerre.procs import pid_alive, port_open
from daguerre.store import Store, open_store
from daguerre.store.tables import ImageRow, JobRow
from tests.integration.conftest import unique_tag
from tests.support.stack import StackConfig, free_port
from tests.support.up import Up

JOBS = 48
PACE_S = 0.4  # one job every PACE_S: ~19 s of load
FAULTS_AT_S = {"worker": 3.0, "gateway": 8.0, "temporal": 13.0}
DRAIN_S = 60.0  # after the load, for every accepted job to finish


@dataclass
class Load:
    accepted: dict[str, int] = field(default_factory=dict)  # client id -> images asked
    outcomes: Counter[str] = field(default_factory=Counter)  # per attempt
    server_errors: list[str] = field(default_factory=list)  # 5xx other than a 503
    restarts: dict[str, float] = field(default_factory=dict)  # role -> seconds to return


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``predicate()`` held; without blocking the load beside it."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} did not happen in {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


async def submit(
    client: httpx.AsyncClient, up: Up, key: str, client_id: str, n: int, load: Load
) -> None:
    """POST the job until it is accepted, as a careful client does."""
    body = {"prompt": f"load test {client_id}", "n": n, "size": "64x64", "id": client_id}
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        try:
            response = await client.post(f"{up.url}/v1/jobs", json=body, headers=headers)
        except httpx.HTTPError as err:  # the gateway is down or died mid-request
            load.outcomes[type(err).__name__] += 1
            await asyncio.sleep(0.2)
            continue
        load.outcomes[str(response.status_code)] += 1
        if response.status_code == 202:
            load.accepted[client_id] = n
            return
        if response.status_code >= 500 and response.status_code != 503:
            load.server_errors.append(f"{client_id}: {response.status_code} {response.text}")
        retry = float(response.headers.get("Retry-After", "0.2"))
        await asyncio.sleep(min(retry, 1.0))


async def inject_faults(up: Up, started: float, load: Load) -> None:
    """Each kill at its time; then how long `daguerre up` took to bring it back."""

    async def at(offset: float) -> None:
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))

    await at(FAULTS_AT_S["worker"])
    (worker,) = up.children("worker")
    os.kill(worker, signal.SIGKILL)
    load.restarts["worker"] = await until(
        lambda: bool(set(up.children("worker")) - {worker}), 30, "a new worker"
    )

    await at(FAULTS_AT_S["gateway"])
    (gateway,) = up.children("gateway")
    os.kill(gateway, signal.SIGKILL)
    await until(lambda: not pid_alive(gateway), 10, "the gateway's death")
    load.restarts["gateway"] = await until(lambda: healthy(up.url), 30, "a new gateway")

    await at(FAULTS_AT_S["temporal"])
    server = up.server_pid()
    os.kill(server, signal.SIGKILL)
    await until(lambda: not pid_alive(server), 10, "the Temporal server's death")

    def server_back() -> bool:
        with contextlib.suppress(OSError, ValueError):
            return up.server_pid() != server and port_open("127.0.0.1", up.temporal_port)
        return False

    load.restarts["temporal"] = await until(server_back, 30, "a new Temporal server")


def rows_of(store: Store, account_id: str) -> tuple[list[Any], list[Any]]:
    with store.db.connect() as conn:
        jobs = conn.execute(select(JobRow).where(JobRow.account_id == account_id)).all()
        images = conn.execute(select(ImageRow).where(ImageRow.account_id == account_id)).all()
    return list(jobs), list(images)


async def test_kill_9_worker_gateway_and_temporal_under_load_loses_nothing(
    tmp_path: Path,
) -> None:
    tag = unique_tag()
    config = StackConfig(
        tmp_path / "data",
        tag,
        values={
            "pools": {"api": {"task_queue": tag}},
            "product_pools": {"api": "api", "chat": "api"},
            # A render whose worker died is taken over soon, from a recent checkpoint.
            "checkpoint_interval_s": 0.2,
            "heartbeat_timeout_s": 2.0,
            "retry_initial_interval_s": 0.2,
            "workflow_execution_timeout_s": 300,
        },
        step_delay_s=0.05,  # ~0.4 s a render: the kills land mid-render
    )
    config.data_dir.mkdir(parents=True)
    store = open_store(config.settings())
    account = store.accounts.create_account("load", "pro", "api")
    key = store.accounts.create_api_key(account.id)

    up = Up(config, free_port(), free_port(), tmp_path / "up.log")
    load = Load()
    server = 0
    try:
        await until(lambda: healthy(up.url), 90, f"`daguerre up` serving:\n{up.output}")
        await until(lambda: bool(up.children("worker")), 30, "a worker")
        server = up.server_pid()
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as client:
            faults = asyncio.create_task(inject_faults(up, started, load))
            submits = []
            for i in range(JOBS):
                await asyncio.sleep(max(0.0, started + i * PACE_S - time.monotonic()))
                n = 1 + i % 2
                submits.append(
                    asyncio.create_task(submit(client, up, key, f"load-{i:03d}", n, load))
                )
            await asyncio.gather(*submits)
            await faults
        load_s = time.monotonic() - started

        def all_final() -> bool:
            jobs, _ = rows_of(store, account.id)
            done = {"succeeded", "failed", "cancelled"}
            return len(jobs) >= len(load.accepted) and all(j.status in done for j in jobs)

        drain_s = await until(all_final, DRAIN_S, f"every job final:\n{up.output[-3000:]}")
        jobs, images = rows_of(store, account.id)
    finally:
        up.stop()
        if server and pid_alive(server):  # a server the launcher failed to stop
            os.kill(server, signal.SIGKILL)
        store.close()

    by_prompt = Counter(j.spec["prompt"] for j in jobs)
    duplicated = sorted(p for p, count in by_prompt.items() if count > 1)
    images_of = Counter(i.job_id for i in images)
    indices = Counter((i.job_id, i.index) for i in images)
    succeeded = {
        j.spec["prompt"].removeprefix("load test ") for j in jobs if j.status == "succeeded"
    }
    lost = sorted(set(load.accepted) - succeeded)
    wrong_images = [
        (j.spec["prompt"], j.spec["n"], images_of[j.id])
        for j in jobs
        if images_of[j.id] != j.spec["n"]
    ]
    retried = sum(1 for j in jobs if j.attempts > 1)  # renders a kill interrupted
    summary = (
        f"{len(load.accepted)} of {JOBS} jobs accepted in {load_s:.1f} s, drained in "
        f"{drain_s:.1f} s; {len(succeeded)} succeeded, {len(lost)} lost, "
        f"{len(duplicated)} duplicated, {len(wrong_images)} with the wrong images, "
        f"{retried} rendered again after a kill; "
        f"restarts {load.restarts}; attempts {dict(load.outcomes)}"
    )
    print(summary)
    assert len(load.accepted) == JOBS, summary  # every job was accepted in the end
    assert not lost, f"{summary}\nlost: {lost}"
    assert not duplicated, f"{summary}\nduplicated: {duplicated}"
    assert not wrong_images, f"{summary}\nwrong images: {wrong_images}"
    assert all(count == 1 for count in indices.values()), summary
    assert len(jobs) == JOBS, summary
    assert not load.server_errors, f"{summary}\n" + "\n".join(load.server_errors)
    assert set(load.restarts) == set(FAULTS_AT_S), summary
