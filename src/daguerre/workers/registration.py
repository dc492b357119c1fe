"""A worker process reports itself to the worker registry (store/workers.py) every
``worker_report_s``: its pool, host, slots, batch budget, renders running and measured
pace. Admission reads the pool's live workers as its capacity (gateway/access/capacity.py),
wherever they run. The row goes when the worker stops cleanly; a worker that dies stops
counting once its row is older than ``store.workers.STALE_REPORTS`` intervals.

A report that fails (the database is away for a moment) is logged and tried again at the
next interval: the worker keeps rendering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from daguerre.store import Store
from daguerre.store.workers import WorkerReport
from daguerre.workers.metrics import WorkerMetrics

log = logging.getLogger(__name__)

# Rows of workers silent this long are deleted when a worker starts.
FORGOTTEN_AFTER_S = 24 * 3600.0


def new_worker_id() -> str:
    """host:pid:random: unique per process start, and readable in a listing (the host
    cut to fit the column: a fully qualified name may be 253 characters)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Registration:
    """One worker process's entry in the registry."""

    store: Store
    pool: str
    slots: int
    batch_images: int
    metrics: WorkerMetrics
    worker_id: str = ""

    def __post_init__(self) -> None:
        self.worker_id = self.worker_id or new_worker_id()
        self.metrics.capacity(self.slots, self.batch_images)

    def report(self) -> WorkerReport:
        """What this worker says of itself now."""
        last = self.metrics.last
        return WorkerReport(
            id=self.worker_id,
            pool=self.pool,
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            slots=self.slots,
            batch_images=self.batch_images,
            running=last.running if last is not None else 0,
            step_s=self.metrics.step_s,
            images_per_s=self.metrics.images_per_s,
        )

    async def send(self) -> bool:
        """Report now; False (logged) if the registry could not be reached."""
        try:
            await self.store.run(self.store.workers.report, self.report())
            return True
        except Exception:  # the database is away: the next report tries again
            log.warning("could not report worker %s to the registry", self.worker_id, exc_info=True)
            return False

    async def forget(self) -> None:
        try:
            await self.store.run(self.store.workers.forget, self.worker_id)
        except Exception:  # it goes stale on its own
            log.warning("could not remove worker %s from the registry", self.worker_id)


@asynccontextmanager
async def registered(registration: Registration, interval_s: float) -> AsyncIterator[None]:
    """Report at once and then every ``interval_s`` for the block; forget it after."""
    with contextlib.suppress(Exception):  # old rows: a nicety, never in the way
        await registration.store.run(registration.store.workers.prune, FORGOTTEN_AFTER_S)
    await registration.send()

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await registration.send()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await registration.forget()
