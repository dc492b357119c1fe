"""Preemption: a render hands its worker slot to waiting work of a higher priority.

Temporal's priority keys order which task a free slot takes next, but nothing can take a
slot back from a render that already holds it. Under a free-tier surge every slot holds
a free render, so a paid job would wait for one of them to finish: up to a whole render
time added to paid latency. Preemption closes that gap. One watcher per worker process
looks, every ``preempt_check_s``, at the pool's queue in the job table. When all of this
process's slots are busy and a job of a higher priority than one of its renders has
waited longer than ``preempt_grace_s``, it asks that render to make way. The render
stops at its next step boundary, writes a checkpoint, puts its job back in the queue and
ends its activity; the workflow schedules it again with the checkpoint, behind the
higher-priority work, and it resumes from that step (no work is lost, and resuming is
exact: see the models' ``load_state``). The slot it freed takes the waiting job, because
Temporal dispatches by priority.

Temporal dispatches "in close to priority order": right after a slot frees, a task of a
lower priority sometimes still wins it over a higher-priority task scheduled a moment
before (measured here: often, within ~40 ms of scheduling). So a render
that starts below a job this process already yielded for (its slot was taken by lower
work) lets that job make another render yield. A render checks once itself as it
starts, before its first step, so that giving a slot straight back costs no work.

Rules that keep it cheap and safe:
- nothing happens while this process has an idle slot (it will take the waiting job);
- a waiting job makes at most one render of this process yield at a time (unless the
  freed slot went to lower-priority work, above), remembered for ``_REMEMBER_S``;
- the victim is the lowest-priority render with the most steps left, and never one that
  would finish in less than ``MIN_TIME_LEFT_S`` (its steps left times its measured step
  time): finishing it is then about as quick as yielding;
- a job yields at most ``max_preemptions`` times (the workflow stops offering it), so a
  started render always finishes.

With several worker processes on one pool, each decides alone, so a waiting job may make
one render yield in each full process; the extra ones go back to the queue and resume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import anyio

log = logging.getLogger(__name__)

# A render this close to done finishes rather than yields: a yield (checkpoint, back to
# the queue, the slot handed over) costs about this much itself.
MIN_TIME_LEFT_S = 0.03
# How long a waiting job is remembered as already served by a yield here: by then it
# runs (its row says so), or it is still waiting and may make another render yield.
_REMEMBER_S = 1.0


class WaitingJobs(Protocol):
    def waiting_above(
        self, pool: str, priority: int, created_before: datetime, limit: int = 16
    ) -> list[tuple[str, int]]: ...


@dataclass
class RenderTicket:
    """A render in progress in this process, as the watcher sees it."""

    job_id: str
    priority: int | None  # None: an old job without one; never preempted
    preemptible: bool
    # Steps it would still run after its next chance to yield (a step boundary).
    steps_left: int = 0
    asked_to_yield: bool = False
    seconds_per_step: float | None = None  # measured; None before its first step here

    def progress(self, step: int, total_steps: int, seconds_per_step: float | None) -> None:
        """Called as step ``step`` begins: its next boundary comes after that step."""
        self.steps_left = total_steps - step
        self.seconds_per_step = seconds_per_step

    @property
    def worth_yielding(self) -> bool:
        if self.steps_left < 1:
            return False
        if self.seconds_per_step is None:
            return True  # nothing rendered yet: giving the slot back costs nothing
        return self.steps_left * self.seconds_per_step >= MIN_TIME_LEFT_S


class Preemption:
    def __init__(
        self,
        jobs: WaitingJobs,
        pool: str,
        slots: int,
        check_s: float = 0.02,
        grace_s: float = 0.02,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._pool = pool
        self._slots = slots
        self._check_s = check_s
        self._grace_s = grace_s
        self._clock = clock
        self._renders: dict[str, RenderTicket] = {}
        # waiting job id -> (when a render yielded to it, its priority)
        self._served: dict[str, tuple[float, int]] = {}

    @contextmanager
    def running(
        self, job_id: str, priority: int | None, preemptible: bool = True, steps_left: int = 0
    ) -> Iterator[RenderTicket]:
        """Register a render for the block; the activity reads ``asked_to_yield``."""
        ticket = RenderTicket(job_id, priority, preemptible, steps_left)
        self._renders[job_id] = ticket
        if priority is not None:
            # A slot freed for a waiting job went to lower work instead: it may ask again.
            stolen = [w for w, (_, p) in self._served.items() if p < priority]
            for waiting in stolen:
                del self._served[waiting]
        try:
            yield ticket
        finally:
            if self._renders.get(job_id) is ticket:
                del self._renders[job_id]

    def _candidates(self) -> list[RenderTicket]:
        return [
            t
            for t in self._renders.values()
            if t.preemptible
            and t.priority is not None
            and not t.asked_to_yield
            and t.worth_yielding
        ]

    def worth_checking(self) -> bool:
        """Only a full process with something it could preempt needs to look."""
        return len(self._renders) >= self._slots and bool(self._candidates())

    def _query(self) -> tuple[int, datetime, int] | None:
        """What to ask the job table (priority, submitted before, limit), or None when
        this process has an idle slot or nothing it could preempt."""
        if not self.worth_checking():
            return None
        candidates = self._candidates()
        lowest = max(t.priority for t in candidates if t.priority is not None)
        cutoff = datetime.fromtimestamp(self._clock() - self._grace_s, UTC)
        return lowest, cutoff, len(candidates) + len(self._served) + len(self._renders)

    def _decide(self, waiting: list[tuple[str, int]]) -> list[str]:
        """Ask renders to yield to the waiting jobs; the job ids of those asked."""
        now = self._clock()
        self._served = {k: v for k, v in self._served.items() if now - v[0] < _REMEMBER_S}
        candidates = self._candidates()
        asked = []
        for job_id, priority in waiting:
            # A job running here may still read "queued" for a moment after it started.
            if job_id in self._renders or job_id in self._served:
                continue
            below = [t for t in candidates if (t.priority or 0) > priority]
            if not below:
                continue
            victim = max(below, key=lambda t: (t.priority or 0, t.steps_left))
            candidates.remove(victim)
            victim.asked_to_yield = True
            self._served[job_id] = (now, priority)
            asked.append(victim.job_id)
            log.info("job %s yields its slot to waiting job %s", victim.job_id, job_id)
        return asked

    def check(self) -> list[str]:
        """One look at the queue, blocking (for tests); the job ids of renders asked."""
        query = self._query()
        if query is None:
            return []
        return self._decide(self._jobs.waiting_above(self._pool, *query))

    async def check_async(self) -> list[str]:
        """The same, with the query in a thread. The registry is only read and changed
        here on the event loop, never from that thread."""
        query = self._query()
        if query is None:
            return []
        waiting = await anyio.to_thread.run_sync(self._jobs.waiting_above, self._pool, *query)
        return self._decide(waiting)

    async def check_now(self) -> None:
        """Look at once, from a render that just started: the slot it took may have been
        meant for waiting higher-priority work (see above), and a render that has done
        no steps yet is the cheapest one to give it back."""
        try:
            await self.check_async()
        except Exception:  # the render goes on; the watcher looks again shortly
            log.exception("preemption check failed")

    async def watch(self) -> None:
        """Run until cancelled: the worker starts this beside its Temporal workers."""
        while True:
            await asyncio.sleep(self._check_s)
            try:
                await self.check_async()
            except Exception:  # a database hiccup must not stop the watcher
                log.exception("preemption check failed; trying again")
                await asyncio.sleep(1.0)
