"""A worker process's Prometheus metrics, served by its endpoint (workers/endpoint.py),
and its measured pace, which it reports to the worker registry (workers/registration.py).

The engine core runs in a process of its own: its counts, step times and CUDA memory
come from its stats messages (workers/engine_stats.py); its resident memory is read from
``/proc/<pid>/statm`` at scrape time; the queue lag is observed by the render activity
when its render starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, Histogram

from daguerre.workers.engine_stats import EngineStats, StepSample

# Seconds per batched step: a tiny CPU model's milliseconds to a big model's seconds.
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Seconds from admission to the render's start: none to a deferred job's long wait.
_LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# Weight of the newest step in the pace's moving average.
_PACE_WEIGHT = 0.2


class WorkerMetrics:
    def __init__(self, slots: int = 0, batch_images: int = 0) -> None:
        # A registry per worker, so that tests can run several workers in one process.
        self.registry = CollectorRegistry()
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
        self.queue_lag = Histogram(
            "daguerre_worker_queue_lag_seconds",
            "From a job's admission (its workflow's start) to the start of its render",
            buckets=_LAG_BUCKETS,
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
        self.slots.set(slots)
        self.batch_images.set(batch_images)
        # Moving averages of the steps seen: what the registry report carries.
        self.step_s: float | None = None
        self.images_per_s: float | None = None
        self.last: EngineStats | None = None

    def engine_stats(self, stats: EngineStats) -> None:
        """Take in what the engine core said of itself (called on the event loop)."""
        self.last = stats
        self.running.set(stats.running)
        self.paused.set(stats.paused)
        self.swapped.set(stats.swapped)
        self.held.set(stats.held)
        for sample in stats.samples:
            self._step(sample)
        for kind, value in (
            ("cuda_allocated", stats.cuda_allocated_bytes),
            ("cuda_reserved", stats.cuda_reserved_bytes),
        ):
            if value is not None:
                self.memory.labels(kind).set(value)

    def _step(self, sample: StepSample) -> None:
        self.step.observe(sample.seconds)
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
