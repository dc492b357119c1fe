"""The engine loop with a real model and no Temporal: batching, joins, pauses, swaps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.models.base import ImageModel, RenderRequest, render
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.registry import create_model
from daguerre.workers.engine import Engine, RenderJob, SwapStore, Update
from daguerre.workers.scheduler import Scheduler


class MemorySwap(SwapStore):
    def __init__(self) -> None:
        self.blobs: dict[tuple[str, int], bytes] = {}

        async def save(job_id: str, step: int, data: bytes) -> None:
            self.blobs[(job_id, step)] = data

        async def load(job_id: str, step: int) -> bytes:
            return self.blobs[(job_id, step)]

        super().__init__(save, load)


async def engine_for(model: ImageModel, scheduler: Scheduler) -> AsyncIterator[Engine]:
    executor = ThreadPoolExecutor(1)

    async def call(fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    engine = Engine(model, scheduler, call, MemorySwap())
    engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        executor.shutdown()


@pytest.fixture(scope="module")
def builtin() -> BuiltinModel:
    model = BuiltinModel()
    model.setup("cpu")
    return model


async def follow(engine: Engine, job: RenderJob, log: list[tuple[str, Update]]) -> Any:
    async with engine.render(job) as ticket:
        while True:
            update = await ticket.updates.get()
            log.append((job.job_id, update))
            if update.kind == "failed":
                raise update.error  # type: ignore[misc]
            if update.kind == "finished":
                return update.results


async def test_renders_joining_paused_and_swapped_make_the_images_made_alone(
    builtin: BuiltinModel,
) -> None:
    """Free renders arrive at random moments; paid ones arrive and preempt them; paused
    states past a tiny memory budget are swapped out and read back. Every image is the
    one the request makes alone."""
    rng = random.Random(4)
    prompts = ["a small blue square on the left", "a purple circle at the bottom right"]
    jobs = []
    for i in range(12):
        n, steps = rng.choice([1, 2]), rng.choice([4, 8])
        reqs = [RenderRequest(prompts[i % 2], seed=200 + i + k, steps=steps) for k in range(n)]
        jobs.append(
            RenderJob(f"j{i}", reqs, priority=1 if i % 4 == 3 else 3, fairness_key=f"a{i % 3}")
        )
    alone = {
        job.job_id: [np.asarray(r.image) for r in render(builtin, job.requests)] for job in jobs
    }
    log: list[tuple[str, Update]] = []
    scheduler = Scheduler(
        budget=4, memory_budget=builtin.state_bytes(builtin.start(jobs[0].requests))
    )
    async for engine in engine_for(builtin, scheduler):

        async def arrive(job: RenderJob, delay: float, engine: Engine = engine) -> Any:
            await asyncio.sleep(delay)
            return await follow(engine, job, log)

        results = await asyncio.gather(*(arrive(j, rng.random() * 0.6) for j in jobs))
    for job, made in zip(jobs, results, strict=True):
        assert all(
            (np.asarray(r.image) == a).all() for r, a in zip(made, alone[job.job_id], strict=True)
        )
    kinds = [u.kind for _, u in log]
    assert kinds.count("paused") > 0 and kinds.count("resumed") == kinds.count("paused")
    assert len(engine._swap.blobs) > 0  # type: ignore[attr-defined]


async def test_a_lone_render_starts_at_once_and_waiting_ones_join_at_the_next_step() -> None:
    model = create_model("fake", step_delay_s=0.02)
    model.setup()
    log: list[tuple[str, Update]] = []
    async for engine in engine_for(model, Scheduler(budget=8)):
        first = asyncio.create_task(
            follow(engine, RenderJob("first", [RenderRequest("a", steps=10)], 3, "a"), log)
        )
        await asyncio.sleep(0.07)  # the first is a few steps in
        second = asyncio.create_task(
            follow(engine, RenderJob("second", [RenderRequest("b", steps=3)], 3, "b"), log)
        )
        await asyncio.gather(first, second)
        ticks = engine.ticks
    order = [(job, u.kind, u.step) for job, u in log]
    assert order[0] == ("first", "started", 0)  # no batching window
    joined = order.index(("second", "started", 0))
    # The second joined mid-way through the first, and left once its 3 steps were done.
    first_steps = [s for job, kind, s in order[:joined] if job == "first" and kind == "step"]
    assert 1 <= len(first_steps) < 9
    assert ("second", "finished", 3) in order and ("first", "finished", 10) in order
    assert ticks == 10  # the second's steps rode along in the first's passes


async def test_a_failing_request_fails_alone_and_its_batch_mates_finish() -> None:
    model = create_model("fake")
    model.setup()
    log: list[tuple[str, Update]] = []
    async for engine in engine_for(model, Scheduler(budget=8)):
        jobs = [RenderJob(f"ok{i}", [RenderRequest(f"p{i}", steps=4)], 3, "a") for i in range(3)]
        jobs.append(RenderJob("bad", [RenderRequest("fail:crash", steps=4)], 3, "b"))
        results = await asyncio.gather(
            *(follow(engine, j, log) for j in jobs), return_exceptions=True
        )
    assert all(isinstance(r, list) for r in results[:3])
    assert isinstance(results[3], RuntimeError)


async def test_a_render_that_cannot_start_fails_and_the_engine_goes_on() -> None:
    model = create_model("fake")
    model.setup()
    log: list[tuple[str, Update]] = []
    async for engine in engine_for(model, Scheduler(budget=8)):
        with pytest.raises(Exception, match="refuses"):
            await follow(engine, RenderJob("bad", [RenderRequest("fail:input")], 3, "a"), log)
        assert await follow(engine, RenderJob("ok", [RenderRequest("fine", steps=2)], 3, "a"), log)
        assert engine.holding == 0
