"""The compute gate: who runs, who waits, and who is asked to pause (no Temporal)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from daguerre.workers.preemption import MIN_TIME_LEFT_S, ComputeGate, Turn


@asynccontextmanager
async def holding(
    gate: ComputeGate, job_id: str, priority: int | None, left: int | None = 6, **kw: object
) -> AsyncIterator[Turn]:
    """A render that holds a permit, with ``left`` steps after its next boundary at a
    measured 40 ms a step (None: it has not started stepping)."""
    async with gate.turn(job_id, priority, **kw) as turn:  # type: ignore[arg-type]
        if left is not None:
            turn.progress(8 - left, 8, 0.04)
        yield turn


def waiter(gate: ComputeGate, job_id: str, priority: int) -> asyncio.Task[None]:
    """A render that asks for a permit and, once it has one, keeps it until cancelled."""

    async def run() -> None:
        async with gate.turn(job_id, priority):
            await asyncio.Event().wait()

    return asyncio.create_task(run())


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_renders_run_at_once_while_permits_last_then_wait() -> None:
    gate = ComputeGate(2)
    async with holding(gate, "a", 3), holding(gate, "b", 3):
        late = waiter(gate, "c", 3)
        await settle()
        assert [t.job_id for t in gate.running] == ["a", "b"]
        assert [t.job_id for t in gate.waiting] == ["c"]
        # Equal priority never pauses anyone: "c" waits for a finish.
        assert not any(t.asked_to_pause for t in gate.running)
    await settle()
    assert [t.job_id for t in gate.running] == ["c"]
    await stop(late)


async def test_higher_priority_work_asks_the_lowest_render_with_most_steps_left() -> None:
    gate = ComputeGate(3)
    async with (
        holding(gate, "plus", 2) as plus,
        holding(gate, "free-short", 3, left=2) as short,
        holding(gate, "free-long", 3, left=6) as long,
    ):
        pro = waiter(gate, "pro", 1)
        await settle()
        assert (long.asked_to_pause, short.asked_to_pause, plus.asked_to_pause) == (
            True,
            False,
            False,
        )
        # One waiting render asks one render to pause, however often the gate looks.
        gate._rebalance()
        assert [t.job_id for t in gate.running if t.asked_to_pause] == ["free-long"]
        # The paused render hands its permit over at its step boundary and waits again.
        assert gate.step_aside(long)
        await settle()
        assert [t.job_id for t in gate.running] == ["plus", "free-short", "pro"]
        assert [t.job_id for t in gate.waiting] == ["free-long"] and long.pauses == 1
        await stop(pro)
        await settle()
        # Once the higher-priority render is done, the paused one has its permit back.
        assert long.running and not gate.waiting


async def test_two_waiting_renders_ask_two_renders_to_pause() -> None:
    gate = ComputeGate(2)
    async with holding(gate, "f1", 3) as f1, holding(gate, "f2", 3) as f2:
        paid = [waiter(gate, "p1", 1), waiter(gate, "p2", 2)]
        await settle()
        assert f1.asked_to_pause and f2.asked_to_pause
        await stop(*paid)


async def test_only_strictly_lower_priority_work_pauses() -> None:
    gate = ComputeGate(1)
    async with holding(gate, "plus", 2) as plus:
        same = waiter(gate, "plus-2", 2)
        lower = waiter(gate, "free", 3)
        await settle()
        assert not plus.asked_to_pause
        await stop(same, lower)


async def test_a_render_about_to_finish_is_not_asked_and_covers_the_waiter() -> None:
    gate = ComputeGate(2)
    async with (
        holding(gate, "ending", 3, left=0) as ending,
        holding(gate, "long", 3, left=6) as long,
    ):
        paid = waiter(gate, "paid", 1)
        await settle()
        # "ending" is in its last step: it frees its permit by finishing, for "paid".
        assert ending.finishing and not ending.asked_to_pause
        assert not long.asked_to_pause
        await stop(paid)


def test_what_counts_as_finishing() -> None:
    turn = Turn("t", 3, 0, pausable=True)
    assert not turn.finishing  # not started: pausing costs nothing
    turn.progress(7, 8, None)
    assert not turn.finishing  # one step left after this one, pace not measured yet
    turn.progress(7, 8, MIN_TIME_LEFT_S / 2)
    assert turn.finishing  # one quick step left: finishing is as soon as pausing
    turn.progress(7, 8, MIN_TIME_LEFT_S * 2)
    assert not turn.finishing  # one slow step left: worth a pause
    turn.progress(8, 8, MIN_TIME_LEFT_S * 2)
    assert turn.finishing  # in its last step: no boundary left


async def test_a_render_that_has_not_stepped_yet_is_the_first_to_pause() -> None:
    gate = ComputeGate(2)
    async with holding(gate, "busy", 3, left=7) as busy, holding(gate, "new", 3, None) as new:
        paid = waiter(gate, "paid", 1)
        await settle()
        assert (new.asked_to_pause, busy.asked_to_pause) == (True, False)
        await stop(paid)


async def test_pauses_are_limited_and_can_be_switched_off() -> None:
    gate = ComputeGate(1, max_pauses=1)
    async with holding(gate, "free", 3) as free:
        paid = waiter(gate, "paid", 1)
        await settle()
        assert gate.step_aside(free)
        await stop(paid)
        await settle()
        assert free.running and not free.pausable  # its one pause is spent
        again = waiter(gate, "paid-2", 1)
        await settle()
        assert not free.asked_to_pause
        await stop(again)
    # Pauses from earlier attempts count too (the job row keeps them).
    async with holding(gate, "old", 3, pauses_so_far=1) as old:
        assert not old.pausable
    off = ComputeGate(1, preemption=False)
    async with holding(off, "free", 3) as free:
        assert not free.pausable


async def test_a_pause_no_longer_needed_does_not_happen() -> None:
    gate = ComputeGate(1)
    async with holding(gate, "free", 3) as free:
        paid = waiter(gate, "paid", 1)
        await settle()
        assert free.asked_to_pause
        await stop(paid)  # e.g. its job was cancelled while it waited
        await settle()
        assert not gate.step_aside(free)
        assert free.running and not free.asked_to_pause and free.pauses == 0


async def test_a_paused_render_resumes_before_later_work_of_its_priority() -> None:
    gate = ComputeGate(1)
    async with AsyncExitStack() as stack:
        free = await stack.enter_async_context(holding(gate, "free", 3))
        paid = waiter(gate, "paid", 1)
        await settle()
        assert gate.step_aside(free)
        later = waiter(gate, "free-later", 3)
        await settle()
        assert [t.job_id for t in gate.waiting] == ["free", "free-later"]
        await stop(paid)
        await gate.resume(free)
        assert free.running and [t.job_id for t in gate.waiting] == ["free-later"]
    await settle()
    assert [t.job_id for t in gate.running] == ["free-later"]
    await stop(later)


async def test_a_waiting_render_keeps_its_activity_alive_and_can_be_cancelled() -> None:
    gate = ComputeGate(1, keepalive_s=0.01)
    beats: list[int] = []
    async with holding(gate, "first", 3):

        async def second() -> None:
            async with gate.turn("second", 3, keepalive=lambda: beats.append(1)):
                pass

        task = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        assert len(beats) >= 3  # heartbeats while it waits
        task.cancel()  # as Temporal cancels an activity
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [t.job_id for t in gate.waiting] == []
    assert gate.running == [] and gate.waiting == []


async def test_a_job_without_a_priority_queues_at_temporals_default() -> None:
    gate = ComputeGate(1)
    async with holding(gate, "old", None) as old:
        assert old.priority == 3


def test_a_gate_needs_a_permit() -> None:
    with pytest.raises(ValueError, match="at least one permit"):
        ComputeGate(0)


async def test_a_cancel_that_arrives_with_the_permit_is_not_lost() -> None:
    gate = ComputeGate(1)
    async with holding(gate, "first", 3):
        second = waiter(gate, "second", 3)
        await settle()
    # "first" is done: the permit is "second"'s, which has not woken up yet when its
    # cancel arrives (an activity cancelled by its owner at that moment).
    assert [t.job_id for t in gate.running] == ["second"]
    second.cancel()
    done, _ = await asyncio.wait({second}, timeout=2)
    assert second in done and second.cancelled()
    assert gate.running == [] and gate.waiting == []
