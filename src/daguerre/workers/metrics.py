"""A worker process's Prometheus metrics, served by its endpoint (workers/endpoint.py),
and its measured pace, which it reports to the worker registry (workers/registration.py).

The engine core runs in a process of its own: its counts, step times and CUDA memory
come from its stats messages (workers/engine_stats.py); its resident memory is read from
``/proc/<pid>/statm`` at scrape time. A job's wait, render time and pauses are observed by
the render activity that runs it (each job on exactly one worker), so the figures of
every worker sum to the deployment's: scrape them all and ``sum`` (docs/operations.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from daguerre.engine.contracts import RenderInput
from daguerre.workers.engine_stats import EngineStats, StepSample

# Seconds per batched step: a tiny CPU model's milliseconds to a big model's seconds.
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Seconds from admission to the render's start: none to a deferred job's long wait; and
# a render's seconds, from a tiny model's fraction of a second to a big model's minutes.
_WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# The share of the batch budget a step fills (images stepped / batch_images).
_OCCUPANCY_BUCKETS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
# Weight of the newest step in the pace's moving average.
_PACE_WEIGHT = 0.2


class WorkerMetrics:
    def __init__(self, slots: int = 0, batch_images: int = 0, pool: str = "") -> None:
        # A registry per worker, so that tests can run several workers in one process.
        self.registry = CollectorRegistry()
        self.pool = pool
        r = self.registry
        self.running = Gauge(
            "daguerre_worker_renders_running", "Renders in the engine's batch", registry=r
        )
        self.paused = Gauge(
            "daguerre_worker_renders_paused",
            "Renders preempted by higher-priority work, their state kept in memory",
            registry=r,
        )
        self.swapped = Gauge(
            "daguerre_worker_renders_swapped",
            "Preempted renders whose state was written out as a checkpoint",
            registry=r,
        )
        self.held = Gauge(
            "daguerre_worker_renders_held",
            "Renders the engine holds: running, paused, swapped or waiting for room",
            registry=r,
        )
        self.step = Histogram(
            "daguerre_worker_step_seconds",
            "Time of one batched step of the engine",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.wait = Histogram(
            "daguerre_job_wait_seconds",
            "From a job's admission (its workflow's start) to the start of its render, "
            "first attempts only",
            ["tier", "pool"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.render = Histogram(
            "daguerre_job_render_seconds",
            "From the start of a render on this worker to its last image (pauses included)",
            ["tier", "pool"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.preemptions = Counter(
            "daguerre_job_preemptions",
            "Pauses of renders for higher-priority work, by the paused job's tier",
            ["tier", "pool"],
            registry=r,
        )
        self.swaps = Counter(
            "daguerre_worker_swaps",
            "Paused renders whose state the engine wrote out to make room",
            ["pool"],
            registry=r,
        )
        self.occupancy = Histogram(
            "daguerre_worker_batch_occupancy",
            "The share of the batch budget each batched step filled (images / batch_images)",
            ["pool"],
            buckets=_OCCUPANCY_BUCKETS,
            registry=r,
        )
        self.memory = Gauge(
            "daguerre_worker_model_memory_bytes",
            "Memory of the engine process, which holds the model: rss (resident), "
            "cuda_allocated and cuda_reserved (torch's CUDA allocator, where used)",
            ["kind"],
            registry=r,
        )
        self.slots = Gauge(
            "daguerre_worker_slots", "Renders the worker takes at once per job queue", registry=r
        )
        self.batch_images = Gauge(
            "daguerre_worker_batch_images", "Images the engine steps together at most", registry=r
        )
        self.pace = Gauge(
            "daguerre_worker_pace_images_per_second",
            "Images per second the worker finishes, measured from its steps (moving average)",
            registry=r,
        )
        self.engine_up = Gauge(
            "daguerre_worker_engine_up", "1 while the engine process runs", registry=r
        )
        self.batch_budget = 0
        self.capacity(slots, batch_images)
        # Moving averages of the steps seen: what the registry report carries.
        self.step_s: float | None = None
        self.images_per_s: float | None = None
        self.last: EngineStats | None = None

    def capacity(self, slots: int, batch_images: int) -> None:
        """What the worker takes at once: the gauges, and the batch budget that a step's
        occupancy is a share of."""
        self.slots.set(slots)
        self.batch_images.set(batch_images)
        self.batch_budget = batch_images

    def engine_stats(self, stats: EngineStats) -> None:
        """Take in what the engine core said of itself (called on the event loop)."""
        self.last = stats
        self.running.set(stats.running)
        self.paused.set(stats.paused)
        self.swapped.set(stats.swapped)
        self.held.set(stats.held)
        for sample in stats.samples:
            self._step(sample)
        if stats.swaps:
            self.swaps.labels(self.pool).inc(stats.swaps)
        for kind, value in (
            ("cuda_allocated", stats.cuda_allocated_bytes),
            ("cuda_reserved", stats.cuda_reserved_bytes),
        ):
            if value is not None:
                self.memory.labels(kind).set(value)

    def _step(self, sample: StepSample) -> None:
        self.step.observe(sample.seconds)
        if self.batch_budget > 0:
            share = min(1.0, sample.images / self.batch_budget)
            self.occupancy.labels(self.pool).observe(share)
        if sample.seconds <= 0 or sample.total_steps <= 0:
            return
        # The images this step's batch finishes per second, at this step's pace.
        pace = sample.images / (sample.seconds * sample.total_steps)
        self.step_s = _average(self.step_s, sample.seconds)
        self.images_per_s = _average(self.images_per_s, pace)
        self.pace.set(self.images_per_s)

    def engine_process(self, pid: int | None) -> None:
        """Note the engine process's state and resident memory (blocking: reads /proc)."""
        self.engine_up.set(1 if pid is not None else 0)
        rss = resident_bytes(pid) if pid is not None else None
        if rss is not None:
            self.memory.labels("rss").set(rss)


class RenderWatch:
    """One render attempt's job metrics, from the updates its activity hears: the wait
    (admission to first start; only for a job's first attempt, as a retry's would count
    the first attempt's run as waiting), the render time, and each pause."""

    def __init__(self, metrics: WorkerMetrics, inp: RenderInput, first_attempt: bool) -> None:
        self._metrics = metrics
        self._labels = (inp.tier or "unknown", metrics.pool)
        self._queued_at = inp.queued_at if first_attempt else None
        self._started: float | None = None

    def heard(self, kind: str) -> None:
        m, now = self._metrics, time.time()
        if kind == "started":
            self._started = now
            if self._queued_at is not None:
                m.wait.labels(*self._labels).observe(max(0.0, now - self._queued_at))
        elif kind == "paused":
            m.preemptions.labels(*self._labels).inc()
        elif kind == "finished" and self._started is not None:
            m.render.labels(*self._labels).observe(now - self._started)


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + _PACE_WEIGHT * (new - old)


def resident_bytes(pid: int) -> int | None:
    """The resident memory of process ``pid`` (``/proc/<pid>/statm``), or None where
    there is no /proc (not Linux) or no such process."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
