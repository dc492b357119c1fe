"""What the engine core says of itself (workers/engine_stats.py) and what the worker's
metrics make of it (workers/metrics.py)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.domain import JobSpec
from daguerre.engine.contracts import RenderInput
from daguerre.models.base import RenderRequest
from daguerre.models.registry import create_model
from daguerre.workers.engine import EngineCore, RenderJob
from daguerre.workers.engine_stats import EngineStats, StatsPacer, StepSample, cuda_memory
from daguerre.workers.metrics import RenderWatch, WorkerMetrics, resident_bytes
from daguerre.workers.scheduler import Scheduler
from tests.unit.workers.test_engine import MemorySwap


def core_with(memory_budget: int) -> EngineCore:
    model = create_model("fake")
    model.setup()
    scheduler = Scheduler(1, memory_budget=memory_budget)
    return EngineCore(model, scheduler, MemorySwap())


def job(job_id: str, priority: int, steps: int = 50) -> RenderJob:
    return RenderJob(job_id, [RenderRequest(job_id, steps=steps)], priority, job_id)


@pytest.mark.parametrize(("memory_budget", "paused", "swapped"), [(2**30, 1, 0), (0, 0, 1)])
def test_stats_count_running_paused_and_swapped_renders(
    memory_budget: int, paused: int, swapped: int
) -> None:
    core = core_with(memory_budget)
    core.submit("low", job("low", priority=3))
    for _ in range(3):
        core.tick()
    core.submit("high", job("high", priority=1))  # preempts "low": a budget of one image
    core.tick()
    stats = core.stats()
    assert (stats.running, stats.paused, stats.swapped, stats.held) == (1, paused, swapped, 2)
    # One sample per batched step, each of one image of 50 steps; handed over once.
    assert len(stats.samples) == 4
    assert all(s.images == 1 and s.total_steps == 50 and s.seconds >= 0 for s in stats.samples)
    assert core.stats().samples == []
    core.withdraw("low")
    core.withdraw("high")
    assert (core.stats().running, core.stats().held) == (0, 0)


def test_stats_go_out_while_busy_at_a_pace_and_once_on_falling_idle() -> None:
    now = [0.0]
    pacer = StatsPacer(every_s=0.5, clock=lambda: now[0])
    assert pacer.due(idle=True)  # the first, after the model loaded
    assert not pacer.due(idle=True)  # nothing new
    now[0] = 0.2
    assert not pacer.due(idle=False)  # work began: within the interval, nothing yet
    now[0] = 0.6
    assert pacer.due(idle=False)
    now[0] = 0.7
    assert not pacer.due(idle=False)
    assert pacer.due(idle=True)  # fell idle: the last counts go out at once
    assert not pacer.due(idle=True)


def test_the_cuda_memory_is_none_where_cuda_is_not_in_use() -> None:
    # The tests run on CPU: torch may be imported, CUDA is never initialised by us.
    assert cuda_memory() == (None, None)


def test_the_cuda_memory_comes_from_torchs_allocator_once_cuda_is_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No GPU here: a stand-in for torch whose CUDA is initialised (as a model on CUDA has).
    cuda = SimpleNamespace(
        is_initialized=lambda: True,
        memory_allocated=lambda: 3 * 2**30,
        memory_reserved=lambda: 4 * 2**30,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    assert cuda_memory() == (3 * 2**30, 4 * 2**30)


def test_metrics_take_the_engines_stats_and_measure_the_pace() -> None:
    metrics = WorkerMetrics()
    # Four images at 0.5 s a step, 20 steps each: 0.4 images per second.
    samples = [StepSample(0.5, 4, 20.0)] * 3
    metrics.engine_stats(EngineStats(3, 1, 2, 7, samples, cuda_allocated_bytes=1024))
    assert metrics.images_per_s == pytest.approx(0.4)
    assert metrics.step_s == pytest.approx(0.5)
    metrics.engine_process(os.getpid())
    text = generate_latest(metrics.registry).decode()
    assert "daguerre_worker_renders_running 3.0" in text
    assert "daguerre_worker_renders_paused 1.0" in text
    assert "daguerre_worker_renders_swapped 2.0" in text
    assert "daguerre_worker_step_seconds_count 3.0" in text
    assert 'daguerre_worker_model_memory_bytes{kind="cuda_allocated"} 1024.0' in text
    assert 'daguerre_worker_model_memory_bytes{kind="rss"}' in text
    assert "daguerre_worker_engine_up 1.0" in text
    metrics.engine_process(None)
    assert "daguerre_worker_engine_up 0.0" in generate_latest(metrics.registry).decode()


def test_occupancy_swaps_and_a_renders_wait_render_and_pauses_by_tier_and_pool() -> None:
    metrics = WorkerMetrics(pool="chat")
    metrics.capacity(slots=6, batch_images=4)
    samples = [StepSample(0.1, 1, 8.0), StepSample(0.1, 4, 8.0), StepSample(0.1, 2, 8.0)]
    metrics.engine_stats(EngineStats(2, 1, 1, 4, samples, swaps=2))
    inp = RenderInput(job_id="j", spec=JobSpec(prompt="p", model="fake"), tier="free")
    watch = RenderWatch(metrics, replace(inp, queued_at=time.time() - 3.0), first_attempt=True)
    for kind in ("started", "step", "paused", "resumed", "paused", "resumed", "finished"):
        watch.heard(kind)
    retry = RenderWatch(metrics, replace(inp, queued_at=time.time() - 60), first_attempt=False)
    for kind in ("started", "finished"):
        retry.heard(kind)  # a retry's render counts, its "wait" (the first run) does not
    text = generate_latest(metrics.registry).decode()
    job = '{pool="chat",tier="free"}'
    assert 'daguerre_worker_batch_occupancy_count{pool="chat"} 3.0' in text
    assert 'daguerre_worker_batch_occupancy_sum{pool="chat"} 1.75' in text  # (1+4+2)/4
    assert 'daguerre_worker_swaps_total{pool="chat"} 2.0' in text
    assert f"daguerre_job_preemptions_total{job} 2.0" in text
    assert f"daguerre_job_wait_seconds_count{job} 1.0" in text
    assert f"daguerre_job_render_seconds_count{job} 2.0" in text
    wait_sum = next(
        line for line in text.splitlines() if line.startswith("daguerre_job_wait_seconds_sum")
    )
    assert 3.0 <= float(wait_sum.rsplit(" ", 1)[1]) < 10.0


def test_resident_memory_comes_from_proc() -> None:
    rss = resident_bytes(os.getpid())
    assert rss is not None and rss > 10 * 2**20  # a Python process with torch about
    assert resident_bytes(2**22 + 12345) is None  # no such process
