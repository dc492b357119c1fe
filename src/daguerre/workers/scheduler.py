"""Which renders a worker runs at its next step: the engine's scheduling policy.

Pure bookkeeping, no model, no Temporal, no clock: the engine (workers/engine.py) asks
for a ``Plan`` before every batched step and carries it out. The rules:

- **Order.** Highest priority first (the smallest Temporal priority key), then turns
  between fairness keys (accounts) within a priority: an account's first waiting
  render goes before anybody's second, counting what each account already runs, so one
  heavy account cannot take a whole priority level; then age.
- **Budget.** The running set holds at most ``budget`` images (a job of ``n`` images
  counts ``n``). A render bigger than the whole budget still runs, alone.
- **Continuous.** Running renders keep their place from step to step; a render that
  finishes leaves at once and the best waiting ones take the room at the very next step,
  wherever the others are in their own loops. With room to spare a lone render starts
  at once: there is no batching window.
- **Preemption.** When a waiting render of strictly higher priority does not fit, the
  lowest-priority running renders (the most steps left first, then the latest) are
  paused to make room: their state stays in memory, and they resume exactly where they
  stopped when they rank high enough again. Never for an equal priority (that would
  only churn), never a render with at most one step left (it makes room sooner by
  finishing), and never a render that has paused ``max_pauses`` times already.
- **Swap.** Paused states beyond ``memory_budget`` bytes are written out as checkpoints
  and dropped (vLLM's swap), the worst-ranked first; they resume from the checkpoint.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

from daguerre import priority as priorities


@dataclass(eq=False)
class Render:
    """The scheduler's view of one render. The engine keeps ``steps_left``, ``started``
    and ``nbytes`` up to date; the scheduler keeps the rest."""

    job_id: str
    priority: int = priorities.DEFAULT
    fairness_key: str = ""
    images: int = 1
    # Steps still to run; None until the render has started.
    steps_left: int | None = None
    # It has a state, in memory or in a checkpoint (a paused or swapped render).
    started: bool = False
    # The state is written out (swapped): resuming reads it back first.
    swapped: bool = False
    # Memory its state holds while it is paused in memory.
    nbytes: int = 0
    pauses: int = 0
    running: bool = False
    arrival: int = 0


@dataclass
class Plan:
    """The running set for the next step, and what changes on the way there."""

    run: list[Render] = field(default_factory=list)
    # Were running, now paused in memory (preempted).
    pause: list[Render] = field(default_factory=list)
    # Paused in memory, to be written out and dropped.
    swap: list[Render] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        budget: int,
        *,
        preemption: bool = True,
        max_pauses: int = 10,
        memory_budget: int = 256 * 2**20,
        express_priority: int = 0,
        express_budget: int | None = None,
    ) -> None:
        if budget < 1 or (express_budget is not None and express_budget < 1):
            raise ValueError("a batch budget is at least one image")
        self.budget = budget
        # While a render at ``express_priority`` or better is held, lower-priority renders
        # run only while the batch holds at most ``express_budget`` images: on a CPU every
        # image added to a step slows every other one down, paid ones included. Express
        # renders themselves may fill the whole budget.
        self.express_priority = express_priority
        self.express_budget = express_budget
        self.preemption = preemption
        self.max_pauses = max_pauses
        self.memory_budget = memory_budget
        self._renders: list[Render] = []
        self._arrivals = itertools.count()

    # --- membership ----------------------------------------------------------------------
    def add(self, render: Render) -> None:
        render.arrival = next(self._arrivals)
        render.running = False
        self._renders.append(render)

    def remove(self, render: Render) -> None:
        if render in self._renders:
            self._renders.remove(render)
        render.running = False

    @property
    def renders(self) -> list[Render]:
        return list(self._renders)

    def waiting_above(self, priority: int) -> int:
        """Renders not running whose priority is strictly higher than ``priority``."""
        return sum(1 for r in self._renders if not r.running and r.priority < priority)

    # --- the plan ------------------------------------------------------------------------
    def order(self) -> list[Render]:
        """Every render, best first: priority, then fairness turns, then age."""
        running = Counter(r.fairness_key for r in self._renders if r.running)
        turns: Counter[tuple[int, str]] = Counter()
        ranked = []
        for render in sorted(self._renders, key=lambda r: (r.priority, r.arrival)):
            if render.running:
                turn = 0  # running renders keep their place
            else:
                key = (render.priority, render.fairness_key)
                turn = running[render.fairness_key] + turns[key]
                turns[key] += 1
            ranked.append(((render.priority, turn, render.arrival), render))
        ranked.sort(key=lambda pair: pair[0])
        return [render for _, render in ranked]

    def _cap(self, ranked: list[Render]) -> int | None:
        """The most images the batch may hold while lower-priority renders run in it:
        ``express_budget`` while express work is held, else no cap."""
        if self.express_budget is None:
            return None
        if any(r.priority <= self.express_priority for r in ranked):
            return self.express_budget
        return None

    def plan(self) -> Plan:
        ranked = self.order()
        cap = self._cap(ranked)
        chosen = [r for r in ranked if r.running]
        used = sum(r.images for r in chosen)
        paused: list[Render] = []
        for waiter in (r for r in ranked if not r.running):
            if used + waiter.images <= self.budget or not chosen:
                chosen.append(waiter)
                used += waiter.images
                continue
            victims = self._victims(chosen, waiter, used, self.budget)
            if victims is None:
                break  # it waits for room, and so does everything ranked after it
            for victim in victims:
                chosen.remove(victim)
                used -= victim.images
                paused.append(victim)
            chosen.append(waiter)
            used += waiter.images
        if cap is not None and used > cap:
            # Express work runs: lower-priority renders keep only what room is left
            # under the cap (the worst go first; running ones pause, new ones wait).
            room = Render("room", self.express_priority, images=0)
            for render in self._victims(chosen, room, used, cap, partial=True, fresh=True) or []:
                chosen.remove(render)
                used -= render.images
                if render.running:
                    paused.append(render)
        running = set(map(id, chosen))
        for render in self._renders:
            render.running = id(render) in running
        for render in paused:
            render.pauses += 1
        return Plan(run=chosen, pause=paused, swap=self._swaps(ranked))

    def _victims(
        self,
        chosen: list[Render],
        waiter: Render,
        used: int,
        budget: int,
        partial: bool = False,
        fresh: bool = False,
    ) -> list[Render] | None:
        """Running renders to pause so that ``waiter`` fits in ``budget``, or None if it
        cannot; with ``partial``, as many as would help even if it still does not fit;
        with ``fresh``, chosen renders that are not running yet count too."""
        if not self.preemption and not fresh:
            return None
        candidates = [
            r
            for r in chosen
            # A running render is paused (when preemption is on); one that has not
            # started yet simply waits.
            if ((r.running and self.preemption) or (fresh and not r.running))
            and r.priority > waiter.priority
            and r.pauses < self.max_pauses
            and (r.steps_left is None or r.steps_left > 1)
        ]
        # The lowest priority first, then the most steps left, then the latest.
        candidates.sort(
            key=lambda r: (
                r.priority,
                float("inf") if r.steps_left is None else r.steps_left,
                r.arrival,
            ),
            reverse=True,
        )
        victims: list[Render] = []
        for victim in candidates:
            if used + waiter.images <= budget:
                break
            victims.append(victim)
            used -= victim.images
        return victims if partial or used + waiter.images <= budget else None

    def _swaps(self, ranked: list[Render]) -> list[Render]:
        """Paused states to write out so that the rest fit the memory budget."""
        held = [r for r in ranked if r.started and not r.swapped and not r.running]
        total = sum(r.nbytes for r in held)
        swaps = []
        for render in reversed(held):  # the worst-ranked first
            if total <= self.memory_budget:
                break
            swaps.append(render)
            total -= render.nbytes
        return swaps
