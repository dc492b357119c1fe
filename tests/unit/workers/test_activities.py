"""The render activity outside Temporal (ActivityEnvironment), with the fake model and a
real engine, batched row writer and checkpoint store."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from temporalio.common import Priority
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.blob_layout import checkpoint_key, partial_key
from daguerre.config import PoolSettings, Settings
from daguerre.domain import JobSpec, JobStatus
from daguerre.engine.contracts import FinalizeInput, RenderInput
from daguerre.store import Store
from daguerre.workers.activities import RenderActivities, render_activities
from daguerre.workers.engine_client import ThreadDriver, build_core
from daguerre.workers.runtime import requests_for


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Progress and a checkpoint after every step, so a test sees (and acts at) each one.
    return Settings(
        data_dir=tmp_path,
        model="fake",
        model_options={"step_delay_s": 0.005},
        checkpoint_interval_s=0,
        progress_interval_s=0,
        heartbeat_timeout_s=0.3,
    )


async def running(settings: Settings, store: Store, **pool: Any) -> AsyncIterator[RenderActivities]:
    """The activities, with the engine's core in a thread (a process each would cost
    seconds); ``acts.model`` is its model, for the tests to look at."""
    pool_settings = PoolSettings(**pool)
    core, info = build_core(settings, pool_settings)
    driver = ThreadDriver(core, info)
    async with render_activities(store, settings, pool_settings, driver) as acts:
        acts.model = core._model  # type: ignore[attr-defined]
        yield acts


@pytest.fixture
async def activities(settings: Settings, store: Store) -> AsyncIterator[RenderActivities]:
    async for acts in running(settings, store):
        yield acts


def submit(store: Store, job_id: str, **spec: Any) -> RenderInput:
    account = store.accounts.create_account("a", "free", "api")
    fields = {"prompt": "a red circle", "model": "fake", "width": 128, "height": 128, **spec}
    job_spec = JobSpec(**fields)
    store.jobs.create(job_id, account.id, "api", job_spec)
    return RenderInput(job_id=job_id, spec=job_spec, account_id=account.id)


def env_with(heartbeats: list[Any], attempt: int = 1, priority: int = 3) -> Any:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=attempt,
        priority=Priority(priority_key=priority, fairness_key=f"account-{priority}"),
    )
    env.on_heartbeat = lambda *d: heartbeats.append(d[0])
    return env


async def test_render_stores_images_and_cleans_up(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j1", n=2, steps=6, output_format="webp")
    out = await env_with([]).run(activities.render, inp)
    assert out.status == "succeeded"
    assert out.image_ids == ["img-j1-0", "img-j1-1"]
    job = store.jobs.get("j1")
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED and job.resumed_from_step is None
    assert job.attempts == 1 and job.started_at is not None
    image = Image.open(io.BytesIO(store.blobs.get(job.images[0].blob_key)))
    assert image.format == "WEBP" and image.size == (128, 128)
    assert job.images[0].encoding_key and store.blobs.exists(job.images[0].encoding_key)
    # A checkpoint was taken at every step, and none is left once the job is done.
    assert store.blobs.keys("checkpoints/j1") == []


async def test_only_a_watched_job_gets_previews(activities: RenderActivities, store: Store) -> None:
    watched, unwatched = submit(store, "seen", steps=20), submit(store, "unseen", steps=20)
    store.jobs.watch("seen", datetime.now(UTC) + timedelta(minutes=1))
    await asyncio.gather(
        env_with([]).run(activities.render, watched), env_with([]).run(activities.render, unwatched)
    )
    assert store.blobs.exists("previews/seen/latest.png")
    assert not store.blobs.exists("previews/unseen/latest.png")


async def test_short_renders_never_heartbeat_and_long_ones_do(
    activities: RenderActivities, store: Store
) -> None:
    short: list[Any] = []
    await env_with(short).run(activities.render, submit(store, "quick", steps=2))
    assert short == []
    long: list[Any] = []
    await env_with(long).run(activities.render, submit(store, "slow", steps=120))
    # 120 steps of 5 ms: a beat every 0.1 s (a third of the timeout), none at the start.
    assert 2 <= len(long) <= 12
    assert all(0 < h["step"] <= 120 for h in long)


async def test_a_retry_resumes_from_the_newest_checkpoint(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j2", steps=8)
    model = activities.model  # type: ignore[attr-defined]
    state = model.start(requests_for(inp.spec))
    for step in range(1, 5):
        state = model.step(state)
        if step in (2, 4):
            store.blobs.put(checkpoint_key("j2", step), model.save_state(state))
    out = await env_with([], attempt=2).run(activities.render, inp)
    assert out.status == "succeeded"
    job = store.jobs.get("j2")
    assert job is not None and job.resumed_from_step == 4 and job.attempts == 1
    assert store.blobs.keys("checkpoints/j2") == []


async def test_a_retry_without_a_checkpoint_starts_over(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j3", steps=3)
    await env_with([], attempt=3).run(activities.render, inp)
    job = store.jobs.get("j3")
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.resumed_from_step == 0


async def test_rendering_a_finished_job_again_changes_nothing(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j4", steps=2)
    first = await env_with([]).run(activities.render, inp)
    passes = activities.model.passes  # type: ignore[attr-defined]
    heartbeats: list[Any] = []
    second = await env_with(heartbeats, attempt=2).run(activities.render, inp)
    assert first == second and heartbeats == []
    assert activities.model.passes == passes  # type: ignore[attr-defined]


async def test_a_cancelled_job_stops_rendering(activities: RenderActivities, store: Store) -> None:
    inp = submit(store, "j5", steps=400)

    async def cancel_soon() -> None:
        for _ in range(200):
            job = store.jobs.get("j5")
            if job is not None and job.step >= 3:
                break
            await asyncio.sleep(0.01)
        store.jobs.finish("j5", JobStatus.CANCELLED, "by owner")

    canceller = asyncio.create_task(cancel_soon())
    out = await env_with([]).run(activities.render, inp)
    await canceller
    assert out.status == "cancelled"
    # It noticed within about a second (the liveness check), not after 400 steps.
    job = store.jobs.get("j5")
    assert job is not None and job.step < 300


async def test_model_input_errors_are_not_retryable(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j6", prompt="fail:input")
    with pytest.raises(ApplicationError) as raised:
        await env_with([]).run(activities.render, inp)
    assert raised.value.type == "ModelInputError"


async def test_wrong_model_is_refused(activities: RenderActivities, store: Store) -> None:
    inp = submit(store, "j7", model="builtin")
    with pytest.raises(ApplicationError) as raised:
        await env_with([]).run(activities.render, inp)
    assert raised.value.type == "WrongModel"


async def test_a_request_that_breaks_the_model_fails_alone(
    activities: RenderActivities, store: Store
) -> None:
    """A shared step that raises cannot tell whose fault it was: every render in it runs
    alone from then on, and only the one that breaks the model fails."""
    bad = submit(store, "bad", prompt="fail:crash", steps=6)
    good = [submit(store, f"good{i}", steps=6) for i in range(3)]
    results = await asyncio.gather(
        env_with([]).run(activities.render, bad),
        *(env_with([]).run(activities.render, g) for g in good),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and "crashed" in str(results[0])
    assert [r.status for r in results[1:]] == ["succeeded"] * 3  # type: ignore[union-attr]


async def test_finalize_marks_and_cleans_up(activities: RenderActivities, store: Store) -> None:
    submit(store, "j8")
    store.blobs.put(checkpoint_key("j8", 2), b"state")
    inp = FinalizeInput("j8", "failed", "it broke", "render_failed")
    assert (await ActivityEnvironment().run(activities.finalize, inp)).changed
    assert not (await ActivityEnvironment().run(activities.finalize, inp)).changed
    job = store.jobs.get("j8")
    assert job is not None and (job.status, job.error) == (JobStatus.FAILED, "it broke")
    assert not store.blobs.exists(checkpoint_key("j8", 2))


async def test_partial_images_are_stored_at_their_steps(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "job-partials", partial_images=3, width=64, height=64)
    await env_with([]).run(activities.render, inp)
    for index in range(3):
        data = store.blobs.get(partial_key("job-partials", index, "png"))
        assert Image.open(io.BytesIO(data)).size == (64, 64)
    with pytest.raises(KeyError):
        store.blobs.get(partial_key("job-partials", 3, "png"))


def test_edit_inputs_come_from_the_blob_store(store: Store) -> None:
    from temporalio.exceptions import ApplicationError

    from daguerre.workers.edits import load_edit_inputs

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, format="PNG")
    store.blobs.put("uploads/j/source.png", buffer.getvalue())
    store.blobs.put("images/j/0.encoding", b"tokens")
    spec = JobSpec(
        prompt="p",
        model="fake",
        source_key="uploads/j/source.png",
        source_encoding_key="images/j/0.encoding",
    )
    inputs = load_edit_inputs(store.blobs, spec)
    assert inputs.source is not None and inputs.source.size == (32, 32)
    assert inputs.encoding == b"tokens" and inputs.mask is None
    assert load_edit_inputs(store.blobs, JobSpec(prompt="p", model="fake")).source is None
    # A missing upload is the service's problem (most often a worker that cannot see the
    # gateway's blob store), never the client's: retried, then a failure with this reason.
    with pytest.raises(ApplicationError, match="not in this worker's blob store") as caught:
        load_edit_inputs(store.blobs, dataclasses.replace(spec, mask_key="uploads/j/mask.png"))
    assert caught.value.type == "BlobMissing" and not caught.value.non_retryable


# --- batching and preemption through the activities ------------------------------------
async def test_concurrent_renders_share_forward_passes(
    activities: RenderActivities, store: Store
) -> None:
    model = activities.model  # type: ignore[attr-defined]
    before = model.passes
    inputs = [submit(store, f"b{i}", steps=10) for i in range(6)]
    outs = await asyncio.gather(*(env_with([]).run(activities.render, i) for i in inputs))
    assert [o.status for o in outs] == ["succeeded"] * 6
    # Six renders of ten steps: far fewer than 60 passes (they join within a step or two).
    assert model.passes - before <= 20


async def render_while_paid_work_arrives(
    activities: RenderActivities, store: Store, inp: RenderInput, priority: int, at: int
) -> tuple[Any, Any, Any]:
    """Render ``inp`` at ``priority``; once its row says step ``at``, a pro (priority 1)
    render arrives. Returns both outputs and the row of ``inp`` as it was while the pro
    render ran."""
    seen: list[Any] = []

    async def paid() -> Any:
        while (job := store.jobs.get(inp.job_id)) is None or job.step < at:
            await asyncio.sleep(0.005)
        pro = submit(store, "paid", steps=20)
        task = asyncio.create_task(env_with([], priority=1).run(activities.render, pro))
        while not task.done():
            row = store.jobs.get(inp.job_id)
            paid_row = store.jobs.get("paid")
            if paid_row is not None and paid_row.status is JobStatus.RUNNING and row is not None:
                seen.append(row)
            await asyncio.sleep(0.005)
        return await task

    free, pro = await asyncio.gather(
        env_with([], priority=priority).run(activities.render, inp), paid()
    )
    return free, pro, seen


async def test_a_render_pauses_for_paid_work_and_resumes_exactly(
    settings: Settings, store: Store
) -> None:
    async for activities in running(settings, store, batch_images=1):
        inp = submit(store, "jy", steps=30)
        free, pro, seen = await render_while_paid_work_arrives(activities, store, inp, 3, at=3)
        assert free.status == pro.status == "succeeded"
        # While the paid render ran, the free job waited with its progress kept.
        waiting = [row for row in seen if row.status is JobStatus.QUEUED]
        assert waiting and all(3 <= row.step < 30 for row in waiting)
        assert waiting[0].preemptions == 1
        job = store.jobs.get("jy")
        assert job is not None and job.preemptions == 1
        # ... and it made the very image an uninterrupted render of the same job makes.
        await env_with([]).run(activities.render, submit(store, "jz", steps=30))
        twin = store.jobs.get("jz")
        assert twin is not None and twin.preemptions == 0
        # Pixels, not bytes: each image's signed content credentials carry their own time.
        same = [pixels(store.blobs.get(j.images[0].blob_key)) for j in (job, twin)]
        assert same[0] == same[1]


async def test_a_deferred_job_that_pauses_waits_as_deferred(
    settings: Settings, store: Store
) -> None:
    async for activities in running(settings, store, batch_images=1):
        account = store.accounts.create_account("d", "free", "api")
        spec = JobSpec(prompt="a blue square", model="fake", width=64, height=64, steps=30)
        store.jobs.create("jd", account.id, "api", spec, priority=5, status=JobStatus.DEFERRED)
        inp = RenderInput(job_id="jd", spec=spec, account_id=account.id)
        free, _, seen = await render_while_paid_work_arrives(activities, store, inp, 5, at=2)
        assert free.status == "succeeded"
        assert any(row.status is JobStatus.DEFERRED and row.preemptions == 1 for row in seen)


async def test_without_preemption_paid_work_waits_its_turn(
    settings: Settings, store: Store
) -> None:
    async for activities in running(settings, store, batch_images=1, preemption=False):
        inp = submit(store, "jn", steps=30)
        free, pro, seen = await render_while_paid_work_arrives(activities, store, inp, 3, at=2)
        assert free.status == pro.status == "succeeded"
        # The free render never paused for the paid one (a pause puts its row back in the
        # queue). Its row may still say running for a moment while the paid one starts:
        # the free one's images are being stored once its last step freed the slot.
        assert seen and all(row.status is not JobStatus.QUEUED for row in seen)
        job = store.jobs.get("jn")
        assert job is not None and job.preemptions == 0


async def test_a_late_attempt_never_overwrites_a_job_finished_elsewhere(
    activities: RenderActivities, store: Store
) -> None:
    """A worker cut off from the cluster renders on; meanwhile its job moved to another
    host and succeeded there. When the cut attempt finishes it leaves that job alone."""
    from daguerre.domain import ImageRecord

    inp = submit(store, "moved", steps=40)

    async def cut_off(job: object, update: object) -> bool:
        return True  # its progress writes go nowhere: it never learns the job moved

    activities._progress.publish = cut_off  # type: ignore[method-assign]
    key = "images/moved/0.png"
    theirs = ImageRecord(
        "img-moved-0", "moved", 0, inp.account_id or "", key, None, "image/png", 128, 128
    )

    async def finish_elsewhere() -> None:
        await asyncio.sleep(0.05)
        store.blobs.put(key, b"the other host's image")
        store.jobs.mark_running("moved", 40, None)
        assert store.jobs.complete("moved", [theirs])

    elsewhere = asyncio.create_task(finish_elsewhere())
    out = await env_with([]).run(activities.render, inp)
    await elsewhere
    assert out.status == "succeeded" and out.image_ids == ["img-moved-0"]
    assert store.blobs.get(key) == b"the other host's image"


async def test_a_slow_caller_between_updates_is_never_cancelled() -> None:
    """The keepalive timer covers the wait for an update, not the caller's work on one:
    a checkpoint written to a slow store, longer than the keepalive, must not be
    cancelled by it (it was, under load: a render failed and went back to Temporal)."""
    from daguerre.workers.activities import _updates
    from daguerre.workers.engine import Update
    from daguerre.workers.engine_client import Ticket

    ticket = Ticket("k", object())  # type: ignore[arg-type]
    ticket.updates.put_nowait(Update("started"))
    ticket.updates.put_nowait(Update("finished"))
    seen = []
    async for update in _updates(ticket, keepalive_s=0.02):
        seen.append(update.kind if update is not None else None)
        await asyncio.sleep(0.1)  # the caller's slow work, 5 keepalives long
        if len(seen) == 3:
            break
    assert seen == ["started", "finished", None]


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGBA").tobytes()
