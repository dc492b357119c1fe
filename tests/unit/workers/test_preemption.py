"""Which render the watcher asks to yield, and when (no Temporal, no database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from daguerre.workers.preemption import MIN_TIME_LEFT_S, Preemption, RenderTicket


class Queue:
    """The job table's waiting jobs, as (id, priority, submitted at)."""

    def __init__(self, *jobs: tuple[str, int, float]) -> None:
        self.jobs = list(jobs)
        self.calls = 0

    def waiting_above(
        self, pool: str, priority: int, created_before: datetime, limit: int = 16
    ) -> list[tuple[str, int]]:
        self.calls += 1
        cutoff = created_before.timestamp()
        found = sorted((j for j in self.jobs if j[1] < priority), key=lambda j: j[1])
        return [(i, p) for i, p, at in found if at < cutoff][:limit]


NOW = 1_000.0


def watcher(queue: Queue, slots: int = 2, grace_s: float = 0.05) -> Preemption:
    return Preemption(queue, "api", slots=slots, grace_s=grace_s, clock=lambda: NOW)


# Open registrations: a dropped context manager would be collected, which ends its block.
_open: list[Any] = []


def start(
    p: Preemption,
    job_id: str,
    priority: int | None,
    left: int = 8,
    pace: float | None = 0.04,
    **kw: Any,
) -> Any:
    """Register a render of 8 steps at ``pace`` s each, with ``left`` to go after its
    next step boundary, as the activity does."""
    ctx = p.running(job_id, priority, **kw)
    _open.append(ctx)
    ticket: RenderTicket = ctx.__enter__()
    ticket.progress(8 - left, 8, pace)
    return ctx, ticket


def test_a_full_worker_makes_its_lowest_priority_render_yield() -> None:
    queue = Queue(("paid", 1, NOW - 1))
    p = watcher(queue)
    _, plus = start(p, "plus", 2)
    _, free = start(p, "free", 3)
    assert p.worth_checking()
    assert p.check() == ["free"]
    assert free.asked_to_yield and not plus.asked_to_yield


def test_an_idle_slot_takes_the_waiting_job_without_anyone_yielding() -> None:
    queue = Queue(("paid", 1, NOW - 1))
    p = watcher(queue, slots=2)
    start(p, "free", 3)
    assert not p.worth_checking()
    assert p.check() == [] and queue.calls == 0


def test_only_work_waiting_past_the_grace_counts() -> None:
    p = watcher(Queue(("paid", 1, NOW - 0.01)), slots=1, grace_s=0.05)
    start(p, "free", 3)
    assert p.check() == []


def test_a_waiting_job_makes_one_render_yield_not_one_per_check() -> None:
    p = watcher(Queue(("paid", 1, NOW - 1)), slots=2)
    start(p, "a", 3, left=4)
    start(p, "b", 3, left=6)
    assert p.check() == ["b"]  # the one with the most steps left
    assert p.check() == []  # still "queued" a moment later: already served


def test_two_waiting_jobs_make_two_renders_yield() -> None:
    p = watcher(Queue(("p1", 1, NOW - 1), ("p2", 1, NOW - 1)), slots=2)
    start(p, "a", 3)
    start(p, "b", 3)
    assert sorted(p.check()) == ["a", "b"]


def test_work_only_yields_to_a_strictly_higher_priority() -> None:
    # plus (2) is waiting; the renders are plus and pro: neither is below it.
    p = watcher(Queue(("waiting-plus", 2, NOW - 1)), slots=2)
    start(p, "running-plus", 2)
    start(p, "running-pro", 1)
    assert p.check() == []
    # a waiting pro job makes the plus render yield, never the pro one
    p = watcher(Queue(("waiting-pro", 1, NOW - 1), ("waiting-plus", 2, NOW - 1)), slots=2)
    start(p, "running-plus", 2)
    start(p, "running-pro", 1)
    assert p.check() == ["running-plus"]


def test_renders_near_the_end_or_not_preemptible_are_left_alone() -> None:
    p = watcher(Queue(("paid", 1, NOW - 1)), slots=3)
    # two fast steps left: finishing is about as quick as yielding
    start(p, "nearly-done", 3, left=2, pace=MIN_TIME_LEFT_S / 4)
    start(p, "last-step", 3, left=0)
    start(p, "out-of-yields", 3, preemptible=False)
    assert not p.worth_checking()
    assert p.check() == []


def test_one_slow_step_left_or_no_step_yet_is_worth_yielding() -> None:
    p = watcher(Queue(("p1", 1, NOW - 1), ("p2", 1, NOW - 1)), slots=2)
    start(p, "one-slow-step", 3, left=1, pace=MIN_TIME_LEFT_S * 2)
    start(p, "just-started", 3, left=2, pace=None)  # nothing rendered: free to give back
    assert sorted(p.check()) == ["just-started", "one-slow-step"]


def test_a_job_running_here_that_still_reads_queued_is_not_waiting() -> None:
    p = watcher(Queue(("paid", 1, NOW - 1)), slots=2)
    start(p, "paid", 1)  # it took the slot; its row says "running" a moment later
    start(p, "free", 3)
    assert p.check() == []


def test_a_finished_render_leaves_the_registry() -> None:
    p = watcher(Queue(), slots=1)
    ctx, _ = start(p, "free", 3)
    ctx.__exit__(None, None, None)
    assert not p.worth_checking()
    assert p._renders == {}


def test_a_slot_freed_for_a_job_but_taken_by_lower_work_lets_it_ask_again() -> None:
    # Temporal dispatches in close to priority order: the slot a yield freed can still go
    # to a free task queued before the paid one. That start re-opens the paid job's claim.
    p = watcher(Queue(("paid", 1, NOW - 1)), slots=1)
    ctx, _ = start(p, "free-1", 3)
    assert p.check() == ["free-1"]
    ctx.__exit__(None, None, None)  # it yielded
    start(p, "free-2", 3)  # ... and its slot went to another free render
    assert p.check() == ["free-2"]


def test_a_slot_that_went_to_equal_or_higher_work_does_not_reopen_the_claim() -> None:
    p = watcher(Queue(("paid", 1, NOW - 1)), slots=1)
    ctx, _ = start(p, "free-1", 3)
    assert p.check() == ["free-1"]
    ctx.__exit__(None, None, None)
    # another paid render took it (the waiting one runs elsewhere, its row lags)
    start(p, "other-paid", 1)
    assert p.check() == []


async def test_the_async_check_queries_in_a_thread_and_decides_the_same() -> None:
    queue = Queue(("paid", 1, NOW - 1))
    p = watcher(queue, slots=1)
    start(p, "free", 3)
    assert await p.check_async() == ["free"]
    assert queue.calls == 1
    idle = watcher(Queue(("paid", 1, NOW - 1)), slots=2)
    start(idle, "free", 3)
    assert await idle.check_async() == []  # an idle slot: not even a query
