"""The render activity outside Temporal (ActivityEnvironment), with the fake model."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.config import Settings
from daguerre.domain import JobRecord, JobSpec, JobStatus
from daguerre.engine.contracts import FinalizeInput, RenderInput
from daguerre.store import Store, open_store
from daguerre.workers.activities import RenderActivities, Resume, checkpoint_key
from daguerre.workers.preemption import ComputeGate
from daguerre.workers.runtime import ModelRuntime


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Progress on every step, so a test can see (and cancel at) each one.
    return Settings(data_dir=tmp_path, model="fake", checkpoint_every=2, progress_interval_s=0)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    yield store
    store.close()


@pytest.fixture
def activities(settings: Settings, store: Store) -> Iterator[RenderActivities]:
    runtime = ModelRuntime.load(settings)
    yield RenderActivities(runtime, store, settings)
    runtime.close()


def submit(store: Store, job_id: str, **spec: Any) -> RenderInput:
    account = store.accounts.create_account("a", "free", "api")
    fields = {"prompt": "a red circle", "model": "fake", "width": 128, "height": 128, **spec}
    job_spec = JobSpec(**fields)
    store.jobs.create(job_id, account.id, "api", job_spec)
    return RenderInput(job_id=job_id, spec=job_spec)


def env_with(heartbeats: list[Any], attempt: int = 1, details: list[Any] | None = None) -> Any:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, heartbeat_details=details or [])
    env.on_heartbeat = lambda *d: heartbeats.append(d[0])
    return env


async def test_render_stores_images_checkpoints_and_heartbeats(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j1", n=2, steps=6, output_format="webp")
    heartbeats: list[Any] = []
    out = await env_with(heartbeats).run(activities.render, inp)
    assert out.status == "succeeded"
    assert out.image_ids == ["img-j1-0", "img-j1-1"]
    assert [h["step"] for h in heartbeats] == [0, 1, 2, 3, 4, 5, 6]
    # a checkpoint every 2 steps (none at the end), named in the heartbeats
    assert [h["checkpoint"] for h in heartbeats] == [
        None, None, checkpoint_key("j1", 2), checkpoint_key("j1", 2),
        checkpoint_key("j1", 4), checkpoint_key("j1", 4), checkpoint_key("j1", 4),
    ]  # fmt: skip
    job = store.jobs.get("j1")
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED and job.resumed_from_step is None
    image = Image.open(io.BytesIO(store.blobs.get(job.images[0].blob_key)))
    assert image.format == "WEBP" and image.size == (128, 128)
    assert job.images[0].encoding_key and store.blobs.exists(job.images[0].encoding_key)
    assert store.blobs.exists("previews/j1/latest.png")
    assert not store.blobs.exists(checkpoint_key("j1", 2))  # cleaned up after success


async def test_a_retry_resumes_from_the_checkpoint_in_its_heartbeat(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j2", steps=8)
    model = activities._runtime.model
    state = model.start(activities._runtime.requests_for(inp.spec))
    for _ in range(4):
        state = model.step(state)
    store.blobs.put(checkpoint_key("j2", 4), model.save_state(state))
    heartbeats: list[Any] = []
    details = [{"step": 5, "checkpoint": checkpoint_key("j2", 4)}]
    out = await env_with(heartbeats, attempt=2, details=details).run(activities.render, inp)
    assert out.status == "succeeded"
    # it names the checkpoint it resumed from until it writes a newer one
    assert heartbeats[0] == {"step": 4, "checkpoint": checkpoint_key("j2", 4)}
    assert heartbeats[1] == {"step": 5, "checkpoint": checkpoint_key("j2", 4)}
    assert heartbeats[2] == {"step": 6, "checkpoint": checkpoint_key("j2", 6)}
    job = store.jobs.get("j2")
    assert job is not None and job.resumed_from_step == 4 and job.attempts == 2


async def test_a_retry_without_a_checkpoint_starts_over(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j3", steps=3)
    details = [{"step": 1, "checkpoint": "checkpoints/j3/000099.state"}]  # lost
    await env_with([], attempt=3, details=details).run(activities.render, inp)
    job = store.jobs.get("j3")
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.resumed_from_step == 0


async def test_rendering_a_finished_job_again_changes_nothing(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "j4", steps=2)
    first = await env_with([]).run(activities.render, inp)
    heartbeats: list[Any] = []
    second = await env_with(heartbeats, attempt=2).run(activities.render, inp)
    assert first == second and heartbeats == []


async def test_a_cancelled_job_stops_rendering(activities: RenderActivities, store: Store) -> None:
    inp = submit(store, "j5", steps=50)
    heartbeats: list[Any] = []

    def on_heartbeat(detail: Any) -> None:
        heartbeats.append(detail)
        if detail["step"] == 3:
            store.jobs.finish("j5", JobStatus.CANCELLED, "by owner")

    env = env_with([])
    env.on_heartbeat = on_heartbeat
    out = await env.run(activities.render, inp)
    assert out.status == "cancelled"
    assert heartbeats[-1]["step"] <= 4


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


async def test_finalize_marks_and_cleans_up(activities: RenderActivities, store: Store) -> None:
    submit(store, "j8")
    store.blobs.put(checkpoint_key("j8", 2), b"state")
    inp = FinalizeInput("j8", "failed", "it broke", "render_failed")
    assert (await ActivityEnvironment().run(activities.finalize, inp)).changed
    assert not (await ActivityEnvironment().run(activities.finalize, inp)).changed
    job = store.jobs.get("j8")
    assert job is not None and (job.status, job.error) == (JobStatus.FAILED, "it broke")
    assert not store.blobs.exists(checkpoint_key("j8", 2))


def test_resume_reads_the_last_heartbeat() -> None:
    assert Resume.from_details([]) == Resume()
    assert Resume.from_details(["junk"]) == Resume()
    assert Resume.from_details([{"step": 4, "checkpoint": "k"}]) == Resume(4, "k")


async def test_partial_images_are_stored_at_their_steps(
    activities: RenderActivities, store: Store
) -> None:
    inp = submit(store, "job-partials", partial_images=3, width=64, height=64)
    await env_with([]).run(activities.render, inp)
    from daguerre.domain import partial_key

    for index in range(3):
        data = store.blobs.get(partial_key("job-partials", index, "png"))
        assert Image.open(io.BytesIO(data)).size == (64, 64)
    with pytest.raises(KeyError):
        store.blobs.get(partial_key("job-partials", 3, "png"))


def test_edit_inputs_come_from_the_blob_store(store: Store) -> None:
    from daguerre.models.base import ModelInputError
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
    with pytest.raises(ModelInputError, match="no longer stored"):
        load_edit_inputs(store.blobs, dataclasses.replace(spec, mask_key="uploads/j/mask.png"))


@pytest.fixture
def gated(settings: Settings, store: Store) -> Iterator[tuple[RenderActivities, ComputeGate]]:
    """Render activities behind a one-permit compute gate that the test shares, at 10 ms
    a step (a render about to finish is never asked to pause; the fake model is quick)."""
    paced = settings.model_copy(update={"render_step_delay_s": 0.01})
    runtime = ModelRuntime.load(paced)
    gate = ComputeGate(1)
    yield RenderActivities(runtime, store, paced, gate), gate
    runtime.close()


async def render_while_paid_work_arrives(
    activities: RenderActivities, gate: ComputeGate, store: Store, inp: RenderInput, at: int
) -> tuple[Any, JobRecord, list[Any]]:
    """Render ``inp``; once it reports step ``at``, a pro render asks for the permit and
    holds it until the job's row no longer says running (or 2 s). Returns the output,
    the job row as the pro render last read it, and the heartbeats."""
    seen: list[JobRecord] = []
    tasks: list[asyncio.Task[None]] = []

    async def paid() -> None:
        async with gate.turn("paid", 1):
            # The permit comes first; the paused render then writes its row.
            for _ in range(200):
                job = store.jobs.get(inp.job_id)
                assert job is not None
                if job.status is not JobStatus.RUNNING:
                    break
                await asyncio.sleep(0.01)
            seen.append(job)

    def on_heartbeat(detail: Any) -> None:
        heartbeats.append(detail)
        if detail["step"] == at and not tasks:
            tasks.append(asyncio.get_running_loop().create_task(paid()))

    heartbeats: list[Any] = []
    env = env_with([])
    env.on_heartbeat = on_heartbeat
    out = await env.run(activities.render, inp)
    await asyncio.gather(*tasks)
    return out, seen[0], heartbeats


async def test_a_render_pauses_for_paid_work_and_resumes_exactly(
    gated: tuple[RenderActivities, ComputeGate], store: Store
) -> None:
    activities, gate = gated
    inp = submit(store, "jy", steps=8)
    out, during, heartbeats = await render_while_paid_work_arrives(
        activities, gate, store, inp, at=3
    )
    # While the paid render ran, the free job waited at a step boundary, its progress
    # kept, one preemption counted.
    assert during.status is JobStatus.QUEUED and during.preemptions == 1
    paused_at = during.step
    assert 3 <= paused_at < 8
    # Then it went on from there: no step done twice, none skipped.
    assert out.status == "succeeded"
    assert [h["step"] for h in heartbeats] == list(range(9))
    job = store.jobs.get("jy")
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert (job.resumed_from_step, job.preemptions) == (paused_at, 1)
    assert gate.running == [] and gate.waiting == []

    # ... with the very image an uninterrupted render of the same job makes.
    await env_with([]).run(activities.render, submit(store, "jz", steps=8))
    twin = store.jobs.get("jz")
    assert twin is not None and twin.preemptions == 0
    assert store.blobs.get(job.images[0].blob_key) == store.blobs.get(twin.images[0].blob_key)


async def test_a_deferred_job_that_pauses_waits_as_deferred(
    gated: tuple[RenderActivities, ComputeGate], store: Store
) -> None:
    activities, gate = gated
    account = store.accounts.create_account("d", "free", "api")
    spec = JobSpec(prompt="a blue square", model="fake", width=64, height=64, steps=6)
    store.jobs.create("jd", account.id, "api", spec, priority=5, status=JobStatus.DEFERRED)
    inp = RenderInput(job_id="jd", spec=spec)
    out, during, _ = await render_while_paid_work_arrives(activities, gate, store, inp, at=2)
    assert during.status is JobStatus.DEFERRED and during.preemptions == 1
    assert out.status == "succeeded"


async def test_without_preemption_a_render_keeps_the_compute(
    settings: Settings, store: Store
) -> None:
    paced = settings.model_copy(update={"render_step_delay_s": 0.01})
    runtime = ModelRuntime.load(paced)
    gate = ComputeGate(1, preemption=False)
    activities = RenderActivities(runtime, store, paced, gate)
    inp = submit(store, "jn", steps=6)
    out, during, _ = await render_while_paid_work_arrives(activities, gate, store, inp, at=2)
    runtime.close()
    # The paid render got the permit only once the free one had done all its steps.
    assert out.status == "succeeded"
    assert during.step == 6 and during.preemptions == 0
