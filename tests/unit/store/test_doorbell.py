"""The doorbell between a host's workers and gateways, and the polling feed it wakes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import event

from daguerre.config import Settings
from daguerre.domain import JobSpec, JobStatus
from daguerre.progress import announcer
from daguerre.progress.polling import PollingProgressFeed, doorbell_folder
from daguerre.store import Store, open_store
from daguerre.store.doorbell import Doorbell, DoorbellListener, _host


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(Settings(data_dir=tmp_path))
    yield store
    store.close()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_ring_wakes_every_listener_of_the_folder(tmp_path: Path) -> None:
    listeners = [DoorbellListener(tmp_path), DoorbellListener(tmp_path)]
    for listener in listeners:
        listener.open()
    assert len(list(tmp_path.iterdir())) == 2
    bell = Doorbell(tmp_path)
    try:
        assert [await listener.wait(0.01) for listener in listeners] == [False, False]
        bell(set())  # nothing changed: no ring
        assert await listeners[0].wait(0.05) is False
        bell({"j"})
        assert [await listener.wait(5.0) for listener in listeners] == [True, True]
        assert all(listener.last_ring > time.monotonic() - 5.0 for listener in listeners)
    finally:
        bell.close()
        for listener in listeners:
            listener.close()
    assert list(tmp_path.iterdir()) == []  # a closed doorbell takes its name away


async def test_doorbells_of_dead_processes_and_other_hosts_are_skipped(tmp_path: Path) -> None:
    stale = tmp_path / f"{_host()}.{dead_pid()}.9"
    elsewhere = tmp_path / f"another-host.{os.getpid()}.9"
    stale.touch()
    elsewhere.touch()
    listener = DoorbellListener(tmp_path)
    listener.open()
    bell = Doorbell(tmp_path)
    try:
        bell({"j"})
        assert await listener.wait(5.0) is True
        assert not stale.exists()  # its gateway died: the worker cleared it
        assert elsewhere.exists()  # not this host's to judge
    finally:
        bell.close()
        listener.close()


def test_without_redis_workers_ring_the_doorbells_of_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    announce = announcer(settings)
    try:
        assert isinstance(announce, Doorbell)
        assert doorbell_folder(settings) == tmp_path / "doorbells"
    finally:
        announce.close()


async def test_a_ring_answers_a_waiter_without_waiting_for_the_timer(
    store: Store, tmp_path: Path
) -> None:
    """Once rings are heard, the feed's timer is its slow interval (here 60 s): the
    waiter is answered because the worker rang, and between rings nothing is polled."""
    account = store.accounts.create_account("a", "free", "api")
    store.jobs.create("j", account.id, "api", JobSpec(prompt="p", model="builtin"))
    folder = doorbell_folder(Settings(data_dir=tmp_path))
    listener = DoorbellListener(folder)
    listener.last_ring = time.monotonic()  # as if workers here had rung before
    feed = PollingProgressFeed(store, interval_s=60.0, doorbell=listener)
    bell = Doorbell(folder)
    try:
        waiting = asyncio.create_task(feed.wait("j"))
        await asyncio.sleep(0.2)  # registered, first read done, now waiting for a ring
        statements: list[str] = []
        event.listen(store.db, "before_cursor_execute", lambda *a: statements.append(a[2]))
        await asyncio.sleep(0.3)
        assert statements == []  # no ring, no poll
        assert not waiting.done()
        await anyio.to_thread.run_sync(store.jobs.complete, "j", [])
        bell({"j"})
        async with asyncio.timeout(10):
            done = await waiting
        assert done is not None and done.status is JobStatus.SUCCEEDED
    finally:
        bell.close()
        feed.close()
    assert list(folder.iterdir()) == []
