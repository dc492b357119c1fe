"""The engine: one loop per worker process that owns the model and steps every render
the process holds in one batch (iteration-level scheduling, as Orca and vLLM do).

Render activities ``submit`` their job and read its ``updates``; they never touch the
model. Each tick of the loop:

1. asks the scheduler (workers/scheduler.py) for the running set: who joins, who is
   paused for higher-priority work, whose paused state is written out (swapped);
2. runs, in the model's thread, everything the model does for that set: write out the
   swapped states, start or resume the joiners, one ``step_many`` for the set, and for
   each render what its step produced (a checkpoint when one is due, a preview when
   someone watches, a partial image at its steps, the images when it finishes);
3. hands each render its update, on the event loop.

A render that finishes leaves at once and a waiting one joins at the very next tick. A
lone render starts at once: there is no batching window. Model work happens only in
the tick, in one thread, so the model is never used concurrently.

A failed shared step cannot tell whose fault it was: every render in it goes back to
where it started in this process and runs alone (``solo``) from then on, so that a
request that breaks the model fails on its own and its batch-mates only lose time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from daguerre.domain import partial_steps
from daguerre.models.base import ImageModel, RenderRequest, RenderResult, RenderState
from daguerre.workers.scheduler import Plan, Render, Scheduler

log = logging.getLogger(__name__)


@dataclass
class RenderJob:
    """What a render activity asks the engine for."""

    job_id: str
    requests: list[RenderRequest]
    priority: int
    fairness_key: str
    # A checkpoint to resume from (a retried attempt), with the step it was taken at.
    resume: bytes | None = None
    # Partial images of image 0 a streaming client asked for (see domain.partial_steps).
    partial_images: int = 0
    # Seconds of rendering between two checkpoints; 0: after every step.
    checkpoint_interval_s: float = 1.0
    # Seconds between two previews while someone watches; 0: after every step.
    preview_interval_s: float = 0.1
    # How many times it may pause, counting earlier attempts.
    pauses_so_far: int = 0


@dataclass
class Update:
    """Something that happened to a render, in the order it happened.

    ``started``: it has a state (``resumed_from`` is the checkpoint's step, if any).
    ``step``: it finished step ``step`` (with what that step produced).
    ``paused``/``resumed``: it left the running set for higher-priority work / came back.
    ``finished``: ``results`` hold its images. ``failed``: ``error`` says why.
    """

    kind: str
    step: int = 0
    total_steps: int = 0
    resumed_from: int | None = None
    checkpoint: bytes | None = None
    preview: Image.Image | None = None
    partial: tuple[int, Image.Image] | None = None
    results: list[RenderResult] | None = None
    error: BaseException | None = None


class SwapStore:
    """Where swapped-out states go: the checkpoint store, by job and step."""

    def __init__(
        self,
        save: Callable[[str, int, bytes], Awaitable[None]],
        load: Callable[[str, int], Awaitable[bytes]],
    ) -> None:
        self.save = save
        self.load = load


@dataclass(eq=False)
class Ticket:
    """One render inside the engine: its job, its scheduling record and its state."""

    job: RenderJob
    render: Render
    updates: asyncio.Queue[Update] = field(default_factory=asyncio.Queue)
    state: RenderState | None = None
    step: int = 0
    total_steps: int = 0
    # What it restarts from after a failed shared step: where it entered this process.
    origin: bytes | None = None
    swapped_at: int | None = None  # the step its swapped-out state was saved at
    started: bool = False
    paused: bool = False
    solo: bool = False
    watched: bool = False
    last_checkpoint: float = 0.0
    last_preview: float = 0.0
    partial_steps: list[int] = field(default_factory=list)

    def watch(self, on: bool) -> None:
        """Someone watches (or stopped watching) the job: previews are wanted."""
        self.watched = on


@dataclass
class _Tick:
    """A plan resolved to tickets (on the event loop), and what running it produced (in
    the model's thread)."""

    run: list[Ticket]
    pause: list[Ticket]
    swap: list[Ticket]
    updates: list[tuple[Ticket, Update]] = field(default_factory=list)
    swapped: list[tuple[Ticket, int, bytes]] = field(default_factory=list)
    done: list[Ticket] = field(default_factory=list)  # finished or failed: they leave

    def emit(self, ticket: Ticket, update: Update) -> None:
        self.updates.append((ticket, update))


ModelCall = Callable[[Callable[[], Any]], Awaitable[Any]]


class Engine:
    def __init__(
        self,
        model: ImageModel,
        scheduler: Scheduler,
        call: ModelCall,
        swap: SwapStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._scheduler = scheduler
        self._call = call  # runs a function in the model's thread
        self._swap = swap
        self._clock = clock
        self._tickets: dict[int, Ticket] = {}  # by id(render); touched on the loop only
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    # --- for render activities -----------------------------------------------------------
    @asynccontextmanager
    async def render(self, job: RenderJob) -> AsyncIterator[Ticket]:
        """Hold ``job`` in the engine for the duration of the block."""
        render = Render(job.job_id, job.priority, job.fairness_key, len(job.requests))
        render.pauses = job.pauses_so_far
        ticket = Ticket(job, render, origin=job.resume)
        self._tickets[id(render)] = ticket
        self._scheduler.add(render)
        self._work.set()
        try:
            yield ticket
        finally:
            self._scheduler.remove(render)
            del self._tickets[id(render)]

    @property
    def holding(self) -> int:
        """Renders in the engine: running, paused or waiting."""
        return len(self._tickets)

    # --- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="daguerre-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            plan = self._scheduler.plan()
            if not plan.run and not plan.swap:
                self._work.clear()
                continue
            tick = self._resolve(plan)
            await self._swap_in(tick)
            await self._call(functools.partial(self._tick, tick))
            self.ticks += 1
            for ticket in tick.done:
                self._scheduler.remove(ticket.render)
            for ticket, step, data in tick.swapped:
                await self._swap.save(ticket.job.job_id, step, data)
                ticket.swapped_at = step
                ticket.render.swapped, ticket.render.nbytes = True, 0
            for ticket, update in tick.updates:
                # A ticket whose activity has left (cancelled) is no longer listed.
                if id(ticket.render) in self._tickets:
                    ticket.updates.put_nowait(update)

    def _resolve(self, plan: Plan) -> _Tick:
        def tickets(renders: list[Render]) -> list[Ticket]:
            return [self._tickets[id(r)] for r in renders]

        return _Tick(tickets(plan.run), tickets(plan.pause), tickets(plan.swap))

    async def _swap_in(self, tick: _Tick) -> None:
        """Read back the states of swapped renders that run again."""
        for ticket in tick.run:
            if ticket.swapped_at is not None:
                ticket.origin = await self._swap.load(ticket.job.job_id, ticket.swapped_at)
                ticket.state, ticket.swapped_at = None, None
                ticket.render.swapped = False

    # --- in the model's thread -----------------------------------------------------------
    def _tick(self, tick: _Tick) -> None:
        model = self._model
        for ticket in tick.pause:
            ticket.paused = True
            tick.emit(ticket, Update("paused", ticket.step, ticket.total_steps))
        for ticket in tick.swap:
            if ticket.state is not None:
                tick.swapped.append((ticket, ticket.state.step, model.save_state(ticket.state)))
                ticket.state = None
        shared: list[Ticket] = []
        alone: list[Ticket] = []
        for ticket in tick.run:
            if ticket.state is None and not self._begin(ticket, tick):
                continue
            if ticket.paused:
                ticket.paused = False
                tick.emit(ticket, Update("resumed", ticket.step, ticket.total_steps))
            (alone if ticket.solo else shared).append(ticket)
        for group in ([shared] if shared else []) + [[t] for t in alone]:
            self._step(group, tick)

    def _begin(self, ticket: Ticket, tick: _Tick) -> bool:
        """Start or resume ``ticket``'s state; False (and a failed update) if it cannot."""
        job = ticket.job
        try:
            if ticket.origin is not None:
                state = self._model.load_state(ticket.origin, job.requests)
            else:
                state = self._model.start(job.requests)
        except Exception as err:  # the render fails, the engine goes on
            self._fail(ticket, err, tick)
            return False
        ticket.state, ticket.step, ticket.total_steps = state, state.step, state.total_steps
        ticket.partial_steps = partial_steps(state.total_steps, job.partial_images)
        ticket.last_checkpoint = ticket.last_preview = self._clock()
        render = ticket.render
        render.started, render.steps_left = True, state.total_steps - state.step
        render.nbytes = self._model.state_bytes(state)
        if not ticket.started:
            ticket.started = True
            resumed_from = state.step if job.resume is not None else None
            tick.emit(ticket, Update("started", state.step, state.total_steps, resumed_from))
        return True

    def _fail(self, ticket: Ticket, err: BaseException, tick: _Tick) -> None:
        tick.emit(ticket, Update("failed", ticket.step, ticket.total_steps, error=err))
        tick.done.append(ticket)

    def _step(self, group: list[Ticket], tick: _Tick) -> None:
        states = [t.state for t in group if t.state is not None]
        try:
            after = self._model.step_many(states)
        except Exception as err:  # see the module docstring
            if len(group) == 1:
                self._fail(group[0], err, tick)
                return
            log.warning("a shared step of %d renders failed (%s); each runs alone", len(group), err)
            for ticket in group:
                ticket.solo, ticket.state = True, None  # back to where it entered
            return
        for ticket, state in zip(group, after, strict=True):
            ticket.state = state
            ticket.render.steps_left = state.total_steps - state.step
            if state.step != ticket.step:
                ticket.step = state.step
                self._produce(ticket, state, tick)

    def _produce(self, ticket: Ticket, state: RenderState, tick: _Tick) -> None:
        """What ``ticket``'s finished step yields: its images, or a step update."""
        model, job, now = self._model, ticket.job, self._clock()
        if state.step >= state.total_steps:
            try:
                results = model.finish(state)
            except Exception as err:
                self._fail(ticket, err, tick)
                return
            tick.emit(ticket, Update("finished", state.step, state.total_steps, results=results))
            tick.done.append(ticket)
            return
        update = Update("step", state.step, state.total_steps)
        if now - ticket.last_checkpoint >= job.checkpoint_interval_s:
            update.checkpoint = model.save_state(state)
            ticket.last_checkpoint = now
        if state.step in ticket.partial_steps:
            image = model.preview(state, 0)
            if image is not None:
                update.partial = (ticket.partial_steps.index(state.step), image)
        if ticket.watched and now - ticket.last_preview >= job.preview_interval_s:
            update.preview = model.preview(state, 0)
            ticket.last_preview = now
        tick.emit(ticket, update)
