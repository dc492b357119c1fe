"""The engine core with a real model and no Temporal: batching, joins, pauses, swaps.

The core is synchronous: a test submits renders and calls ``tick`` as the engine
process does, and reads what each render would hear.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.models.base import ImageModel, RenderRequest, render
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.registry import create_model
from daguerre.workers.engine import EngineCore, RenderJob, SwapStore, Update
from daguerre.workers.scheduler import Scheduler


class MemorySwap(SwapStore):
    def __init__(self) -> None:
        self.blobs: dict[tuple[str, int], bytes] = {}
        super().__init__(self._save, self._load)

    def _save(self, job_id: str, step: int, data: bytes) -> None:
        self.blobs[(job_id, step)] = data

    def _load(self, job_id: str, step: int) -> bytes:
        return self.blobs[(job_id, step)]


def core_for(model: ImageModel, **scheduler: int) -> EngineCore:
    return EngineCore(model, Scheduler(**scheduler), MemorySwap())  # type: ignore[arg-type]


def fake(**options: float) -> ImageModel:
    model = create_model("fake", **options)
    model.setup()
    return model


@pytest.fixture(scope="module")
def builtin() -> BuiltinModel:
    model = BuiltinModel()
    model.setup("cpu")
    return model


def run(core: EngineCore, arrivals: dict[int, list[RenderJob]]) -> dict[str, list[Update]]:
    """Tick until every render is done, submitting ``arrivals[t]`` before tick ``t``."""
    heard: dict[str, list[Update]] = {}
    tick = 0
    while tick <= max(arrivals) or core.runnable:
        for job in arrivals.get(tick, []):
            core.submit(job.job_id, job)
        for key, update in core.tick():
            heard.setdefault(key, []).append(update)
            if update.kind in ("finished", "failed"):
                core.withdraw(key)
        tick += 1
    return heard


def test_renders_joining_paused_and_swapped_make_the_images_made_alone(
    builtin: BuiltinModel,
) -> None:
    """Free renders arrive at random ticks; paid ones arrive and preempt them; paused
    states past a tiny memory budget are swapped out and read back. Every image is the
    one the request makes alone."""
    rng = random.Random(4)
    prompts = ["a small blue square on the left", "a purple circle at the bottom right"]
    arrivals: dict[int, list[RenderJob]] = {}
    jobs = []
    for i in range(12):
        n, steps = rng.choice([1, 2]), rng.choice([4, 8])
        reqs = [RenderRequest(prompts[i % 2], seed=200 + i + k, steps=steps) for k in range(n)]
        job = RenderJob(f"j{i}", reqs, priority=1 if i % 4 == 3 else 3, fairness_key=f"a{i % 3}")
        jobs.append(job)
        arrivals.setdefault(rng.randrange(12), []).append(job)
    alone = {
        job.job_id: [np.asarray(r.image) for r in render(builtin, job.requests)] for job in jobs
    }
    one = builtin.state_bytes(builtin.start(jobs[0].requests))
    core = core_for(builtin, budget=4, memory_budget=one)
    heard = run(core, arrivals)
    for job in jobs:
        last = heard[job.job_id][-1]
        assert last.kind == "finished" and last.results is not None
        made = [np.asarray(r.image) for r in last.results]
        assert all((a == b).all() for a, b in zip(made, alone[job.job_id], strict=True))
    kinds = [u.kind for updates in heard.values() for u in updates]
    assert kinds.count("paused") > 0 and kinds.count("resumed") == kinds.count("paused")
    assert core._swap.blobs  # type: ignore[attr-defined]
    # The stats count each state written out (the workers' daguerre_worker_swaps_total).
    assert core.stats().swaps >= len(core._swap.blobs) > 0  # type: ignore[attr-defined]
    assert core.stats().swaps == 0  # handed over once


def test_a_lone_render_starts_at_once_and_waiting_ones_join_at_the_next_step() -> None:
    core = core_for(fake(), budget=8)
    core.watched = {"first", "second"}  # watched: every step is heard
    first = RenderJob("first", [RenderRequest("a", steps=10)], 3, "a")
    second = RenderJob("second", [RenderRequest("b", steps=3)], 3, "b")
    heard = run(core, {0: [first], 4: [second]})
    # No batching window: the first started at the first tick, with its first step.
    assert [(u.kind, u.step) for u in heard["first"][:2]] == [("started", 0), ("step", 1)]
    # The second joined mid-way and left once its 3 steps were done: ten passes in all.
    assert [u.kind for u in heard["second"]] == ["started", "step", "step", "finished"]
    assert core.ticks == 10 and core._model.passes == 10  # type: ignore[attr-defined]


def test_an_unwatched_render_is_told_only_that_it_started_and_finished() -> None:
    core = core_for(fake(), budget=8)
    heard = run(core, {0: [RenderJob("quiet", [RenderRequest("q", steps=12)], 3, "a")]})
    assert [u.kind for u in heard["quiet"]] == ["started", "finished"]


def test_a_render_whose_job_ended_elsewhere_is_dropped() -> None:
    core = core_for(fake(), budget=8)
    core.submit("k", RenderJob("cancelled", [RenderRequest("c", steps=500)], 3, "a"))
    for _ in range(5):
        core.tick()
    core.stopped = {"cancelled"}
    ((key, update),) = core.tick()
    assert key == "k" and update.kind == "stopped" and update.step == 5
    assert core.holding == 0 and not core.runnable


def test_a_failing_request_fails_alone_and_its_batch_mates_finish() -> None:
    core = core_for(fake(), budget=8)
    jobs = [RenderJob(f"ok{i}", [RenderRequest(f"p{i}", steps=4)], 3, "a") for i in range(3)]
    jobs.append(RenderJob("bad", [RenderRequest("fail:crash", steps=4)], 3, "b"))
    heard = run(core, {0: jobs})
    assert [heard[f"ok{i}"][-1].kind for i in range(3)] == ["finished"] * 3
    assert heard["bad"][-1].kind == "failed"
    assert "crashed" in str(heard["bad"][-1].error)


def test_a_render_that_cannot_start_fails_and_the_engine_goes_on() -> None:
    from daguerre.models.base import ModelInputError

    core = core_for(fake(), budget=8)
    heard = run(
        core,
        {
            0: [RenderJob("bad", [RenderRequest("fail:input")], 3, "a")],
            1: [RenderJob("ok", [RenderRequest("fine", steps=2)], 3, "a")],
        },
    )
    assert isinstance(heard["bad"][-1].error, ModelInputError)
    assert heard["ok"][-1].kind == "finished" and core.holding == 0
