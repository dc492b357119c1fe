"""A render's part of its job's trace: a ``render`` span below Temporal's ``RunActivity``
span, and a ``model.step`` span below it for every model step the render took.

The steps run in the engine process, which traces nothing itself (it has no exporter and
needs none): it times each step with the wall clock when the render asks for it
(``RenderJob.trace_steps``) and hands the times over with the render's next update
(engine.StepTime). This process records them as spans with those very start and end
times, so a step span shows when the model really ran, and with how many renders it
shared the batched step. Pauses and resumes (preemption) are events on the render span.

With tracing off the tracer is OpenTelemetry's no-op one: the span does not record, the
engine times nothing, and the only cost is a few no-op calls per render.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from daguerre.workers.engine import Update
from daguerre.workers.progress import JobRef

_tracer = trace.get_tracer(__name__)

# Updates worth a mark on the render span (steps become spans of their own).
_EVENTS = frozenset({"started", "paused", "resumed", "stopped"})


class RenderTrace:
    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._context = trace.set_span_in_context(span)
        self.recording = span.is_recording()  # whether the engine should time steps

    def heard(self, update: Update) -> None:
        """Note what the engine said about the render: its timed steps as spans, and
        its pauses and resumes as events."""
        if not self.recording:
            return
        if update.kind in _EVENTS:
            self._span.add_event(update.kind, {"daguerre.step": update.step})
        for timed in update.step_times or ():
            span = _tracer.start_span(
                "model.step",
                context=self._context,
                start_time=timed.start_ns,
                attributes={"daguerre.step": timed.step, "daguerre.batch_renders": timed.batch},
            )
            span.end(end_time=timed.end_ns)


@contextmanager
def render_trace(job: JobRef) -> Iterator[RenderTrace]:
    """The render's span, current for the block (an error that leaves the block marks
    it failed)."""
    attributes: dict[str, str | int] = {
        "daguerre.job_id": job.job_id,
        "daguerre.model": job.spec.model,
        "daguerre.attempt": job.attempt,
        "daguerre.priority": job.priority,
    }
    with _tracer.start_as_current_span("render", attributes=attributes) as span:
        yield RenderTrace(span)
