"""The scheduler's order and rules, with no model and no Temporal."""

from __future__ import annotations

import pytest

from daguerre.workers.scheduler import Render, Scheduler


def add(
    scheduler: Scheduler, job_id: str, priority: int = 3, account: str = "a", **kw: object
) -> Render:
    render = Render(job_id, priority, account, **kw)  # type: ignore[arg-type]
    scheduler.add(render)
    return render


def ids(renders: list[Render]) -> list[str]:
    return [r.job_id for r in renders]


def step(scheduler: Scheduler, finished: list[Render] = ()) -> list[str]:  # type: ignore[assignment]
    """One plan, as the engine runs it: renders that run are started."""
    for render in finished:
        scheduler.remove(render)
    plan = scheduler.plan()
    for render in plan.run:
        render.started = True
        if render.steps_left is None:
            render.steps_left = 8
    return ids(plan.run)


def test_priority_first_then_age() -> None:
    s = Scheduler(budget=2)
    add(s, "free-1", 3)
    add(s, "free-2", 3)
    add(s, "pro", 1)
    add(s, "plus", 2)
    assert ids(s.order()) == ["pro", "plus", "free-1", "free-2"]
    assert step(s) == ["pro", "plus"]


def test_accounts_take_turns_within_a_priority() -> None:
    s = Scheduler(budget=3)
    for i in range(4):
        add(s, f"heavy-{i}", 3, "heavy")
    add(s, "light-0", 3, "light")
    add(s, "other-0", 3, "other")
    # Each account's first render before anybody's second, then by age.
    assert ids(s.order()) == ["heavy-0", "light-0", "other-0", "heavy-1", "heavy-2", "heavy-3"]
    assert step(s) == ["heavy-0", "light-0", "other-0"]


def test_what_an_account_already_runs_counts_against_its_turn() -> None:
    s = Scheduler(budget=2)
    add(s, "heavy-0", 3, "heavy")
    add(s, "heavy-1", 3, "heavy")
    assert step(s) == ["heavy-0", "heavy-1"]
    add(s, "heavy-2", 3, "heavy")
    add(s, "light-0", 3, "light")
    finished = [r for r in s.renders if r.job_id == "heavy-0"]
    # heavy still runs one render, so light's first waiting one goes first.
    assert step(s, finished) == ["heavy-1", "light-0"]


def test_the_budget_counts_images_and_a_big_job_runs_alone() -> None:
    s = Scheduler(budget=4)
    add(s, "n3", images=3)
    add(s, "n2", images=2)
    add(s, "n1", images=1)
    # n2 does not fit beside n3, and what ranks after it waits too (no overtaking).
    assert step(s) == ["n3"]
    big = Scheduler(budget=2)
    add(big, "n5", images=5)
    add(big, "n1", images=1)
    assert step(big) == ["n5"]


def test_finished_renders_leave_and_waiting_ones_join_at_the_next_step() -> None:
    s = Scheduler(budget=2)
    a, b = add(s, "a"), add(s, "b")
    add(s, "c")
    assert step(s) == ["a", "b"]
    assert step(s) == ["a", "b"]  # running renders keep their place
    assert step(s, [a]) == ["b", "c"]
    assert step(s, [b]) == ["c"]


def test_a_lone_render_starts_at_once() -> None:
    s = Scheduler(budget=64)
    assert step(s) == []
    add(s, "only")
    assert step(s) == ["only"]


def test_higher_priority_work_pauses_the_lowest_priority_render() -> None:
    s = Scheduler(budget=2)
    free = add(s, "free", 3)
    deferred = add(s, "deferred", 5)
    assert step(s) == ["free", "deferred"]
    add(s, "pro", 1)
    plan = s.plan()
    assert ids(plan.run) == ["free", "pro"] and ids(plan.pause) == ["deferred"]
    assert deferred.pauses == 1 and free.pauses == 0
    # The paused one keeps its state and comes back when there is room.
    pro = plan.run[1]
    assert step(s, [pro]) == ["free", "deferred"]


def test_among_equals_the_render_with_most_steps_left_pauses() -> None:
    s = Scheduler(budget=2)
    near, far = add(s, "near"), add(s, "far")
    step(s)
    near.steps_left, far.steps_left = 2, 7
    add(s, "pro", 1)
    assert ids(s.plan().pause) == ["far"]


def test_no_pause_for_equal_priority_a_last_step_or_past_max_pauses() -> None:
    s = Scheduler(budget=1, max_pauses=1)
    a = add(s, "a", 3)
    step(s)
    add(s, "same", 3)
    assert ids(s.plan().run) == ["a"]  # equal priority: it waits
    a.steps_left = 1
    add(s, "pro", 1)
    assert ids(s.plan().run) == ["a"]  # one step left: it finishes instead
    a.steps_left = 5
    a.pauses = 1
    assert ids(s.plan().run) == ["a"]  # paused as often as it may
    off = Scheduler(budget=1, preemption=False)
    add(off, "a", 3)
    step(off)
    add(off, "pro", 1)
    assert ids(off.plan().run) == ["a"]


def test_paused_states_past_the_memory_budget_are_swapped_worst_first() -> None:
    s = Scheduler(budget=2, memory_budget=250)
    lows = [add(s, f"low-{i}", 4, nbytes=100) for i in range(2)]
    step(s)
    for render in lows:
        render.nbytes = 100
    add(s, "pro-0", 1)
    add(s, "pro-1", 1)
    plan = s.plan()
    assert ids(plan.pause) == ["low-1", "low-0"]  # the later of two equals first
    # 200 bytes paused fit 250: nothing swapped yet.
    assert plan.swap == []
    s.memory_budget = 150
    plan = s.plan()
    assert ids(plan.swap) == ["low-1"]  # the later of two equals goes first


def test_a_budget_is_at_least_one_image() -> None:
    with pytest.raises(ValueError):
        Scheduler(budget=0)


def test_while_paid_work_runs_the_batch_shrinks_to_the_express_budget() -> None:
    s = Scheduler(budget=8, express_priority=2, express_budget=3)
    free = [add(s, f"free-{i}", 3) for i in range(6)]
    assert step(s) == [f"free-{i}" for i in range(6)]  # no paid work: the whole budget
    add(s, "pro", 1)
    plan = s.plan()
    # The batch is cut to three images: the paid render and the two oldest free ones.
    assert ids(plan.run) == ["free-0", "free-1", "pro"]
    assert sorted(ids(plan.pause)) == [f"free-{i}" for i in range(2, 6)]
    # Once the paid render is done, the free ones fill the whole budget again.
    pro = plan.run[2]
    assert step(s, [pro]) == [f"free-{i}" for i in range(6)]
    assert all(r.pauses <= 1 for r in free)


def test_paid_work_alone_fills_the_whole_budget_and_free_work_waits_under_the_cap() -> None:
    s = Scheduler(budget=8, express_priority=2, express_budget=3)
    for i in range(10):
        add(s, f"pro-{i}", 1)
    add(s, "free", 3)
    assert step(s) == [f"pro-{i}" for i in range(8)]  # the cap binds only free work
    off = Scheduler(budget=8, express_priority=2, express_budget=3, preemption=False)
    add(off, "pro", 1)
    for i in range(4):
        add(off, f"free-{i}", 3)
    # Without preemption nothing running is paused, but new free work keeps to the cap.
    assert step(off) == ["pro", "free-0", "free-1"]
