"""The events carry what their readers need from the row, so none re-derives the layout."""

from __future__ import annotations

from dataclasses import replace

from daguerre.blob_layout import partial_key, preview_key
from daguerre.domain import JobRecord, JobSpec, JobStatus, partial_steps
from daguerre.progress.events import ProgressEvent, written_partials


def job(step: int, status: JobStatus = JobStatus.RUNNING) -> JobRecord:
    spec = JobSpec(prompt="p", model="builtin", partial_images=2, output_format="webp")
    return JobRecord(
        id="j",
        account_id="a",
        pool="api",
        status=status,
        spec=spec,
        created_at=0.0,
        step=step,
        total_steps=10,
        preview_key=preview_key("j"),
    )


def test_an_event_names_the_partial_images_written_by_its_step() -> None:
    due = partial_steps(10, 2)
    assert due == [3, 7]
    keys = [partial_key("j", i, "webp") for i in range(2)]
    assert written_partials(job(2)) == ()
    assert written_partials(job(3)) == (keys[0],)
    assert written_partials(job(9)) == tuple(keys)
    assert written_partials(replace(job(9), total_steps=None)) == ()  # not started


def test_an_event_carries_the_step_and_the_preview_while_the_job_renders() -> None:
    event = ProgressEvent.of("progress", job(7), b"png")
    assert (event.kind, event.step, event.preview_png) == ("progress", 7, b"png")
    assert event.preview_key == preview_key("j")
    assert len(event.partial_keys) == 2
    done = ProgressEvent.of("completed", job(10, JobStatus.SUCCEEDED))
    assert done.preview_key is None and done.preview_png is None
    assert done.partial_keys == written_partials(job(10))
