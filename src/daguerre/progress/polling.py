"""The embedded transport: the gateway polls the job rows, on a timer or when this
host's workers ring its doorbell (store/doorbell.py). It needs nothing else running.

Polling costs a query per tick, and the tick trades answer latency against CPU that a
model on the same few cores needs. So the tick follows the load: every ``MIN_TICK_S``
for a lone waiter (an idle service answers within milliseconds of the render), a
little longer per job followed, up to ``interval_s`` (a query of many ids costs more,
and under load latency is seconds). With a doorbell, workers on this host ring after
they commit rows: the feed reads as soon as one rings, no more often than the tick,
and once rings are heard the timer falls back to ``interval_s``, only to catch writers
that do not ring. An idle answer then costs neither a tick's wait nor a busy poller.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from daguerre.config import Settings
from daguerre.progress.feed import RowFeed
from daguerre.store import Store
from daguerre.store.doorbell import DoorbellListener


def doorbell_folder(settings: Settings) -> Path:
    """Where the gateways of this host leave their doorbells (store/doorbell.py)."""
    return settings.data_dir / "doorbells"


class TimerSignal:
    """A ``ChangeSignal`` that is a timer alone: a tick that grows with the jobs followed."""

    MIN_TICK_S = 0.005
    TICK_PER_JOB_S = 0.00025

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._followed = 0

    def follow(self, job_ids: frozenset[str]) -> None:
        self._followed = len(job_ids)

    def tick_s(self) -> float:
        return min(self.MIN_TICK_S + self.TICK_PER_JOB_S * self._followed, self._interval_s)

    async def wait(self) -> None:
        await asyncio.sleep(self.tick_s())

    def close(self) -> None:
        pass


class DoorbellSignal(TimerSignal):
    """The timer, cut short when a worker on this host rings after committing rows."""

    # Rings heard this recently mean the workers here ring: the timer may slow down.
    RINGS_TRUSTED_S = 300.0

    def __init__(self, interval_s: float, listener: DoorbellListener) -> None:
        super().__init__(interval_s)
        self._listener = listener
        self._last_read = float("-inf")  # when wait last let the feed read

    def follow(self, job_ids: frozenset[str]) -> None:
        # Opened (inside the event loop) when the feed starts following again: a doorbell
        # that cannot open says so once then, and the timer alone drives the feed.
        starting = job_ids and not self._followed
        super().follow(job_ids)
        if starting:
            self._listener.open()

    async def wait(self) -> None:
        tick = self.tick_s()
        since = time.monotonic() - self._last_read
        if since < tick:  # rings never make the feed read more often than its tick
            await asyncio.sleep(tick - since)
        trusted = time.monotonic() - self._listener.last_ring < self.RINGS_TRUSTED_S
        await self._listener.wait(self._interval_s if trusted else tick)
        self._last_read = time.monotonic()

    def close(self) -> None:
        self._listener.close()


class PollingProgressFeed(RowFeed):
    """The row feed on a timer, woken by ``doorbell`` when there is one."""

    def __init__(
        self, store: Store, interval_s: float = 0.15, doorbell: DoorbellListener | None = None
    ) -> None:
        signal = (
            TimerSignal(interval_s) if doorbell is None else DoorbellSignal(interval_s, doorbell)
        )
        super().__init__(store, signal)
