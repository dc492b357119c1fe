"""The model steps of a traced render: the engine times them only when asked, hands the
times over with the render's updates, and the worker turns them into ``model.step`` spans
below the ``render`` span, with the engine's own start and end times."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.domain import JobSpec
from daguerre.models.base import RenderRequest
from daguerre.models.registry import create_model
from daguerre.workers import render_tracing
from daguerre.workers.engine import EngineCore, RenderJob, StepTime, SwapStore, Update
from daguerre.workers.progress import JobRef
from daguerre.workers.render_tracing import render_trace
from daguerre.workers.scheduler import Scheduler


def finished_updates(trace_steps: bool, renders: int = 2) -> list[Update]:
    """Two renders of four steps, batched, run to the end: what each heard last."""
    model = create_model("fake")
    model.setup()
    swap = SwapStore(lambda job, step, data: None, lambda job, step: b"")
    core = EngineCore(model, Scheduler(8), swap)
    for i in range(renders):
        request = RenderRequest("a red circle", seed=i, steps=4)
        core.submit(f"k{i}", RenderJob(f"j{i}", [request], 3, "a", trace_steps=trace_steps))
    finished = []
    while core.runnable:
        finished += [u for _, u in core.tick() if u.kind == "finished"]
    return finished


def test_the_engine_times_the_steps_of_a_render_that_asks() -> None:
    for update in finished_updates(trace_steps=True):
        times = update.step_times or []
        assert [t.step for t in times] == [1, 2, 3, 4]
        assert all(t.batch == 2 and t.start_ns <= t.end_ns for t in times)
    assert all(u.step_times is None for u in finished_updates(trace_steps=False))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """render_tracing's tracer, on a provider of the test's own (never the global one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(render_tracing, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


JOB = JobRef("job-1", JobSpec(prompt="a red circle", model="fake", width=64, height=64), 1, 3)


def test_a_traced_render_has_a_span_per_step_with_the_engine_times(
    spans: InMemorySpanExporter,
) -> None:
    with render_trace(JOB) as traced:
        assert traced.recording
        traced.heard(Update("started", 0, 2))
        times = [StepTime(1, 1_000, 2_000, 3), StepTime(2, 2_500, 3_000, 1)]
        traced.heard(Update("finished", 2, 2, step_times=times))
    finished = {s.name: s for s in spans.get_finished_spans()}
    render = finished["render"]
    assert render.attributes is not None and render.attributes["daguerre.job_id"] == "job-1"
    assert [e.name for e in render.events] == ["started"]
    steps = [s for s in spans.get_finished_spans() if s.name == "model.step"]
    assert [(s.start_time, s.end_time) for s in steps] == [(1_000, 2_000), (2_500, 3_000)]
    assert [s.attributes and s.attributes["daguerre.batch_renders"] for s in steps] == [3, 1]
    assert all(s.parent and s.parent.span_id == render.context.span_id for s in steps)


def test_a_failed_render_marks_its_span(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), render_trace(JOB):
        raise RuntimeError("the model broke")
    [render] = spans.get_finished_spans()
    assert render.status.status_code is trace.StatusCode.ERROR


def test_an_untraced_render_records_nothing() -> None:
    with render_trace(JOB) as traced:  # the global provider: OpenTelemetry's no-op
        assert not traced.recording
        traced.heard(Update("finished", 1, 1, step_times=[StepTime(1, 1, 2, 1)]))
