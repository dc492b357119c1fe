"""Preemption: a worker's renders take turns on its compute, highest priority first.

Temporal's priority keys order which waiting task a free slot takes next, but nothing can
take a slot back from a render that already holds it. Under a free-tier surge every slot
holds a free render, so a paid job would wait for one of them to finish: up to a whole
render time added to paid latency. Two parts close that gap:

- **The express lane** (``PoolSettings.express_priority``, engine/contracts.py): jobs at
  that priority or above run, workflow and render, on the pool's express task queue,
  which every worker of the pool serves with slots of its own. A backlog of free work
  therefore never stands between a paid job and a worker process.
- **The compute gate** (here): a worker process may hold more renders than it runs (its
  main and its express slots, the latter one more than ``concurrency`` so that queued
  paid work leaves no gap), but only ``permits`` of them (the pool's ``concurrency``)
  run model code at a time. A render that finds every permit taken by lower-priority
  renders asks the lowest of them, the one with the most steps left, to pause. That render
  stops at its next step boundary, hands its permit over, and waits for one again in
  priority order, keeping its state in memory and its Temporal slot. It resumes exactly
  where it stopped. A paid render so waits for at most one model step, with no round trip
  through Temporal.

Rules that keep it cheap and safe:
- each waiting render needs one running render to make way, the best waiter first; a
  render about to finish (less than ``MIN_TIME_LEFT_S`` to go at its measured pace) makes
  way by finishing, so it is never asked;
- only strictly lower-priority work pauses; within a priority, renders take turns in
  arrival order (a paused render keeps its place, ahead of later ones);
- a job pauses at most ``max_pauses`` times (counted across attempts, in its row), so a
  started render always finishes;
- the gate is per process: a paused render resumes in the process that holds it, even if
  another worker of the pool falls idle first (only at the tail of a backlog).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# A render this close to done is not asked to pause: finishing frees its permit about as
# soon, without the pause's two job-row writes.
MIN_TIME_LEFT_S = 0.03
# Temporal's own default priority key: where a job without one (older rows) queues.
DEFAULT_PRIORITY = 3


def _no_keepalive() -> None:
    return None


@dataclass(eq=False)
class Turn:
    """One render's claim on the compute, from the time it asks until it is done."""

    job_id: str
    priority: int  # Temporal priority key: smaller runs first
    order: int  # arrival order, kept across pauses
    pausable: bool
    # Called now and then while the render waits (the activity heartbeats, so that
    # Temporal neither times it out nor misses a cancel).
    keepalive: Callable[[], None] = _no_keepalive
    # Steps it would still run after its next step boundary; None before it knows.
    steps_left: int | None = None
    seconds_per_step: float | None = None  # measured; None before its first step here
    asked_to_pause: bool = False
    pauses: int = 0
    _granted: asyncio.Event = field(default_factory=asyncio.Event)

    def progress(self, step: int, total_steps: int, seconds_per_step: float | None) -> None:
        """Called as step ``step`` begins: its next boundary comes after that step."""
        self.steps_left = total_steps - step
        self.seconds_per_step = seconds_per_step

    @property
    def finishing(self) -> bool:
        """Close enough to done that it makes way sooner by finishing than by pausing."""
        if self.steps_left is None:
            return False  # not started: pausing costs nothing
        if self.steps_left < 1:
            return True  # in its last step: there is no boundary left to pause at
        if self.seconds_per_step is None:
            return False  # no step measured here yet
        return self.steps_left * self.seconds_per_step < MIN_TIME_LEFT_S

    @property
    def running(self) -> bool:
        return self._granted.is_set()


def _victim_rank(turn: Turn) -> tuple[int, float, int]:
    """The lowest priority first, then the most steps left (one that has not stepped
    yet loses nothing), then the latest to arrive."""
    steps = float("inf") if turn.steps_left is None else turn.steps_left
    return turn.priority, steps, turn.order


class ComputeGate:
    def __init__(
        self,
        permits: int,
        preemption: bool = True,
        max_pauses: int = 10,
        keepalive_s: float = 1.0,
    ) -> None:
        if permits < 1:
            raise ValueError("a compute gate needs at least one permit")
        self._permits = permits
        self._preemption = preemption
        self._max_pauses = max_pauses
        self._keepalive_s = keepalive_s
        self._running: list[Turn] = []
        self._waiting: list[Turn] = []  # best first: (priority, order)
        self._order = itertools.count()

    @property
    def running(self) -> list[Turn]:
        return list(self._running)

    @property
    def waiting(self) -> list[Turn]:
        return list(self._waiting)

    @asynccontextmanager
    async def turn(
        self,
        job_id: str,
        priority: int | None,
        pauses_so_far: int = 0,
        keepalive: Callable[[], None] = _no_keepalive,
    ) -> AsyncIterator[Turn]:
        """Wait for a permit, then hold it for the block (except while paused)."""
        turn = Turn(
            job_id,
            DEFAULT_PRIORITY if priority is None else priority,
            next(self._order),
            pausable=self._may_pause(pauses_so_far),
            keepalive=keepalive,
            pauses=pauses_so_far,
        )
        self._enqueue(turn)
        try:
            await self._wait(turn)
            yield turn
        finally:
            self._leave(turn)

    def step_aside(self, turn: Turn) -> bool:
        """At a step boundary of a render asked to pause: hand its permit to the waiting
        work it was asked for. False (and the render goes on) when that work no longer
        waits, e.g. it was cancelled."""
        if not turn.asked_to_pause or turn not in self._running:
            return False
        turn.asked_to_pause = False
        if not any(w.priority < turn.priority for w in self._waiting):
            return False
        self._running.remove(turn)
        turn._granted.clear()
        turn.pauses += 1
        turn.pausable = self._may_pause(turn.pauses)
        log.info("job %s pauses for higher-priority work", turn.job_id)
        self._enqueue(turn)
        return True

    async def resume(self, turn: Turn) -> None:
        """Wait (after ``step_aside``) until the render's turn comes again."""
        await self._wait(turn)

    # --- bookkeeping ---------------------------------------------------------------------
    def _may_pause(self, pauses: int) -> bool:
        return self._preemption and pauses < self._max_pauses

    def _enqueue(self, turn: Turn) -> None:
        self._waiting.append(turn)
        self._waiting.sort(key=lambda t: (t.priority, t.order))
        self._rebalance()

    def _leave(self, turn: Turn) -> None:
        if turn in self._running:
            self._running.remove(turn)
        if turn in self._waiting:
            self._waiting.remove(turn)
        self._rebalance()

    async def _wait(self, turn: Turn) -> None:
        while not turn.running:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that
            # arrives just as the permit is granted, and the activity would go on.
            try:
                async with asyncio.timeout(self._keepalive_s):
                    await turn._granted.wait()
            except TimeoutError:
                turn.keepalive()

    def _rebalance(self) -> None:
        """Hand free permits to the best waiters, then ask running renders to make way
        for the waiters that remain (one render each)."""
        while self._waiting and len(self._running) < self._permits:
            turn = self._waiting.pop(0)
            self._running.append(turn)
            turn._granted.set()
        if not self._waiting:
            return
        # Renders already on their way out cover the best waiters.
        leaving = sum(1 for r in self._running if r.asked_to_pause or r.finishing)
        for waiter in self._waiting[leaving:]:
            lower = [
                r
                for r in self._running
                if r.priority > waiter.priority
                and r.pausable
                and not r.asked_to_pause
                and not r.finishing
            ]
            if not lower:
                break  # the waiters after this one rank no higher
            victim = max(lower, key=_victim_rank)
            victim.asked_to_pause = True
            log.info("job %s is asked to pause for job %s", victim.job_id, waiter.job_id)
