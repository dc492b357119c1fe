"""The engine core: the model and the scheduler, stepping every render a worker holds in
one batch (iteration-level scheduling, as Orca and vLLM do).

It is synchronous and single-threaded on purpose. It runs in a process of its own
(workers/engine_client.py): a model's Python glue takes and gives back the GIL around
every tensor operation, and next to an event loop busy with Temporal it waited for the
GIL for more than half of each step (measured with py-spy). Render activities reach it
through ``engine_client.Engine``; they never touch the model.

Each ``tick``:

1. drops renders whose jobs ended elsewhere (cancelled by their owner);
2. asks the scheduler (workers/scheduler.py) for the running set: who joins, who is
   paused for higher-priority work, whose paused state is written out (swapped);
3. writes out the swapped states, starts or resumes the joiners, runs one
   ``step_many`` for the set, and for each render collects what its step produced: a
   checkpoint when one is due, a preview when someone watches, a partial image at its
   steps, the images when it finishes.

A render that finishes leaves at once and a waiting one joins at the very next tick. A
lone render starts at once: there is no batching window.

A failed shared step cannot tell whose fault it was: every render in it goes back to
where it started in this process and runs alone (``solo``) from then on, so that a
request that breaks the model fails on its own and its batch-mates only lose time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from daguerre.domain import partial_steps
from daguerre.models.base import (
    ImageModel,
    ModelInputError,
    RenderRequest,
    RenderResult,
    RenderState,
)
from daguerre.workers.engine_stats import MAX_SAMPLES, EngineStats, StepSample, cuda_memory
from daguerre.workers.scheduler import Render, Scheduler

log = logging.getLogger(__name__)


@dataclass
class RenderJob:
    """What a render activity asks the engine for."""

    job_id: str
    requests: list[RenderRequest]
    priority: int
    fairness_key: str
    # A checkpoint to resume from (a retried attempt).
    resume: bytes | None = None
    # Partial images of image 0 a streaming client asked for (see domain.partial_steps).
    partial_images: int = 0
    # Seconds of rendering between two checkpoints; 0: after every step.
    checkpoint_interval_s: float = 1.0
    # Seconds between two previews while someone watches; 0: after every step.
    preview_interval_s: float = 0.1
    # Time each of its steps for the render's trace (workers/render_tracing.py).
    trace_steps: bool = False


@dataclass(frozen=True)
class StepTime:
    """When one step of a render ran (wall clock, ns), and how many renders it served."""

    step: int
    start_ns: int
    end_ns: int
    batch: int


@dataclass
class Update:
    """Something that happened to a render, in the order it happened.

    ``started``: it has a state (``resumed_from`` is the checkpoint's step, if any).
    ``step``: it finished step ``step`` (with what that step produced); sent only when
    the step produced something, or someone watches the job.
    ``paused``/``resumed``: it left the running set for higher-priority work / came back.
    ``finished``: ``results`` hold its images. ``failed``: ``error`` says why.
    ``stopped``: its job ended elsewhere (its owner cancelled it); the engine dropped it.
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
    # The steps timed since the render's last update (a RenderJob with ``trace_steps``).
    step_times: list[StepTime] | None = None


@dataclass
class SwapStore:
    """Where swapped-out states go: the checkpoint store, by job and step (blocking)."""

    save: Callable[[str, int, bytes], None]
    load: Callable[[str, int], bytes]


@dataclass(eq=False)
class _Ticket:
    """One render inside the engine: its job, its scheduling record and its state."""

    key: str  # the submitter's name for it (unique while it is held)
    job: RenderJob
    render: Render
    state: RenderState | None = None
    step: int = 0
    total_steps: int = 0
    # What it restarts from after a failed shared step: where it entered this process.
    origin: bytes | None = None
    swapped_at: int | None = None  # the step its swapped-out state was saved at
    started: bool = False
    paused: bool = False
    solo: bool = False
    last_checkpoint: float = 0.0
    last_preview: float = 0.0
    partial_steps: list[int] = field(default_factory=list)
    step_times: list[StepTime] = field(default_factory=list)  # not yet sent


def portable(err: BaseException) -> BaseException:
    """An error that survives pickling to another process and keeps what matters: a
    ModelInputError stays one (the job fails at once); anything else is retried."""
    if isinstance(err, ModelInputError):
        return ModelInputError(str(err))
    return RuntimeError(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)


Heard = list[tuple[str, Update]]


class EngineCore:
    def __init__(
        self,
        model: ImageModel,
        scheduler: Scheduler,
        swap: SwapStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._scheduler = scheduler
        self._swap = swap
        self._clock = clock
        self._tickets: dict[str, _Ticket] = {}
        self._by_render: dict[int, _Ticket] = {}
        # Job ids someone watches (their renders show previews and every step), and job
        # ids that ended elsewhere (their renders are dropped): the job rows say.
        self.watched: set[str] = set()
        self.stopped: set[str] = set()
        self.ticks = 0
        self._samples: list[StepSample] = []  # steps since the last ``stats``
        self._swaps = 0  # states written out since the last ``stats``

    # --- membership ----------------------------------------------------------------------
    def submit(self, key: str, job: RenderJob) -> None:
        render = Render(job.job_id, job.priority, job.fairness_key, len(job.requests))
        ticket = _Ticket(key, job, render, origin=job.resume)
        self._tickets[key] = ticket
        self._by_render[id(render)] = ticket
        self._scheduler.add(render)

    def withdraw(self, key: str) -> None:
        """Forget a render (its activity ended: done, or cancelled)."""
        ticket = self._tickets.pop(key, None)
        if ticket is not None:
            self._scheduler.remove(ticket.render)
            self._by_render.pop(id(ticket.render), None)

    @property
    def holding(self) -> int:
        """Renders held: running, paused or waiting."""
        return len(self._tickets)

    @property
    def runnable(self) -> bool:
        """Whether a tick would do anything."""
        return bool(self._scheduler.renders)

    # --- one tick ------------------------------------------------------------------------
    def tick(self) -> Heard:
        """One batched step of the running set; what each render should hear."""
        out: Heard = []
        self._drop_stopped(out)
        plan = self._scheduler.plan()
        if not plan.run and not plan.swap:
            return out
        self.ticks += 1
        model = self._model
        for render in plan.pause:
            ticket = self._by_render[id(render)]
            ticket.paused = True
            out.append((ticket.key, Update("paused", ticket.step, ticket.total_steps)))
        for render in plan.swap:
            ticket = self._by_render[id(render)]
            if ticket.state is not None:
                step = ticket.state.step
                self._swap.save(ticket.job.job_id, step, model.save_state(ticket.state))
                ticket.state, ticket.swapped_at = None, step
                self._swaps += 1
                render.swapped, render.nbytes = True, 0
        shared: list[_Ticket] = []
        alone: list[_Ticket] = []
        for render in plan.run:
            ticket = self._by_render[id(render)]
            if ticket.state is None and not self._begin(ticket, out):
                continue
            if ticket.paused:
                ticket.paused = False
                out.append((ticket.key, Update("resumed", ticket.step, ticket.total_steps)))
            (alone if ticket.solo else shared).append(ticket)
        for group in ([shared] if shared else []) + [[t] for t in alone]:
            self._step(group, out)
        return out

    def _drop_stopped(self, out: Heard) -> None:
        for ticket in list(self._tickets.values()):
            if ticket.job.job_id in self.stopped:
                out.append((ticket.key, Update("stopped", ticket.step, ticket.total_steps)))
                self.withdraw(ticket.key)

    def _leave(self, ticket: _Ticket) -> None:
        """A finished or failed render leaves the batch (its activity withdraws it)."""
        self._scheduler.remove(ticket.render)

    def _begin(self, ticket: _Ticket, out: Heard) -> bool:
        """Start or resume ``ticket``'s state; False (and a failed update) if it cannot."""
        job = ticket.job
        if ticket.swapped_at is not None:
            ticket.origin = self._swap.load(job.job_id, ticket.swapped_at)
            ticket.swapped_at, ticket.render.swapped = None, False
        try:
            if ticket.origin is not None:
                state = self._model.load_state(ticket.origin, job.requests)
            else:
                state = self._model.start(job.requests)
        except Exception as err:  # the render fails, the engine goes on
            self._fail(ticket, err, out)
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
            out.append((ticket.key, Update("started", state.step, state.total_steps, resumed_from)))
        return True

    def _fail(self, ticket: _Ticket, err: BaseException, out: Heard) -> None:
        update = Update("failed", ticket.step, ticket.total_steps, error=portable(err))
        out.append((ticket.key, _timed(ticket, update)))
        self._leave(ticket)

    def _step(self, group: list[_Ticket], out: Heard) -> None:
        states = [t.state for t in group if t.state is not None]
        began, began_ns = self._clock(), time.time_ns()
        try:
            after = self._model.step_many(states)
        except Exception as err:  # see the module docstring
            if len(group) == 1:
                self._fail(group[0], err, out)
                return
            log.warning("a shared step of %d renders failed (%s); each runs alone", len(group), err)
            for ticket in group:
                ticket.solo, ticket.state = True, None  # back to where it entered
            return
        self._sample(self._clock() - began, group)
        ended_ns = time.time_ns()
        for ticket, state in zip(group, after, strict=True):
            ticket.state = state
            if ticket.job.trace_steps:
                ticket.step_times.append(StepTime(state.step, began_ns, ended_ns, len(group)))
            ticket.render.steps_left = state.total_steps - state.step
            if state.step != ticket.step:
                ticket.step = state.step
                self._produce(ticket, state, out)

    def _sample(self, seconds: float, group: list[_Ticket]) -> None:
        """Note one successful batched step: its time, its images, its renders' length."""
        if states := [t.state for t in group if t.state is not None]:
            images = sum(len(t.job.requests) for t in group)
            total = sum(s.total_steps for s in states) / len(states)
            self._samples = [*self._samples[-MAX_SAMPLES + 1 :], StepSample(seconds, images, total)]

    def stats(self) -> EngineStats:
        """The counts now, and the steps since the last call (which it hands over)."""
        tickets = self._tickets.values()
        samples, self._samples = self._samples, []
        swaps, self._swaps = self._swaps, 0
        allocated, reserved = cuda_memory()
        return EngineStats(
            running=sum(1 for t in tickets if t.render.running),
            paused=sum(1 for t in tickets if t.paused and t.swapped_at is None),
            swapped=sum(1 for t in tickets if t.swapped_at is not None),
            held=len(self._tickets),
            samples=samples,
            swaps=swaps,
            cuda_allocated_bytes=allocated,
            cuda_reserved_bytes=reserved,
        )

    def _produce(self, ticket: _Ticket, state: RenderState, out: Heard) -> None:
        """What ``ticket``'s finished step yields: its images, or a step update."""
        model, job, now = self._model, ticket.job, self._clock()
        if state.step >= state.total_steps:
            try:
                results = model.finish(state)
            except Exception as err:
                self._fail(ticket, err, out)
                return
            done = Update("finished", state.step, state.total_steps, results=results)
            out.append((ticket.key, _timed(ticket, done)))
            self._leave(ticket)
            return
        update = Update("step", state.step, state.total_steps)
        if now - ticket.last_checkpoint >= job.checkpoint_interval_s:
            update.checkpoint = model.save_state(state)
            ticket.last_checkpoint = now
        if state.step in ticket.partial_steps:
            image = model.preview(state, 0)
            if image is not None:
                update.partial = (ticket.partial_steps.index(state.step), image)
        watched = job.job_id in self.watched
        if watched and now - ticket.last_preview >= job.preview_interval_s:
            update.preview = model.preview(state, 0)
            ticket.last_preview = now
        # A step with nothing to show for an unwatched job is not worth waking its
        # activity for: its row learns the outcome when the render ends.
        if watched or update.checkpoint or update.partial:
            out.append((ticket.key, _timed(ticket, update)))


def _timed(ticket: _Ticket, update: Update) -> Update:
    """``update`` with the steps timed since the render's last update (they ride along
    with whatever it hears next: an unwatched render hears only its end)."""
    if ticket.step_times:
        update.step_times, ticket.step_times = ticket.step_times, []
    return update
