"""One trace per job (issue 19): a gateway and a worker, each a process of its own and each
exporting its spans by OTLP to a receiver in this test, trace one generation as a single
tree: the HTTP request at the root, Temporal's workflow and activity spans (the SDK's
tracing interceptor) below it, and the worker's render with a span per model step.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from daguerre.engine.contracts import RENDER_ACTIVITY, WORKFLOW
from daguerre.engine.tracing import GATEWAY_SERVICE, WORKER_SERVICE
from tests.integration.conftest import running_stack, unique_tag
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.stack import StackConfig

HTTP_SPAN = "POST /v1/images/generations"
STEPS = 8  # the fake model's (tests/support/fake_model.py)


def job_trace(receiver: OtlpReceiver, timeout_s: float = 30.0) -> list[ReceivedSpan]:
    """The spans of the one traced generation, once the render's last step span and the
    workflow's completion have come in (each process sends its batch on its own time)."""
    deadline = time.monotonic() + timeout_s
    spans: list[ReceivedSpan] = []
    while time.monotonic() < deadline:
        spans = receiver.snapshot()
        roots = [s for s in spans if s.name == HTTP_SPAN]
        if roots:
            mine = [s for s in spans if s.trace_id == roots[0].trace_id]
            names = Counter(s.name for s in mine)
            if names["model.step"] >= STEPS and names[f"CompleteWorkflow:{WORKFLOW}"]:
                return mine
        time.sleep(0.1)
    raise AssertionError(f"the job's spans did not all arrive: {Counter(s.name for s in spans)}")


# "fast", as workers run by default; "strict", where the interceptor's workflow half must
# pass the sandbox's checks too.
@pytest.mark.parametrize("sandbox", ["fast", "strict"])
def test_one_job_is_one_trace_across_gateway_temporal_and_worker(
    tmp_path: Path, temporal_address: str, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    # Both processes send their batched spans every 100 ms rather than every 5 s.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    with otlp_receiver() as receiver:
        values = {"otlp_traces_endpoint": receiver.endpoint, "workflow_sandbox": sandbox}
        config = StackConfig(tmp_path, unique_tag(), temporal_address, values=values)
        with running_stack(config, tmp_path) as stack:
            body = {"prompt": "a red circle", "model": "fake", "size": "64x64"}
            headers = {"Authorization": f"Bearer {stack.new_key()}"}
            answer = httpx.post(
                f"{stack.url}/v1/images/generations", json=body, headers=headers, timeout=60
            )
            assert answer.status_code == 200, answer.text
            spans = job_trace(receiver)
            # A probe is no job: it leaves no trace.
            assert httpx.get(f"{stack.url}/healthz").status_code == 200
        assert not [s for s in receiver.snapshot() if s.attributes.get("url.path") == "/healthz"]

    by_id = {s.span_id: s for s in spans}
    by_name = {s.name: s for s in spans}
    # One tree: a single root, the HTTP request, and every other span's parent in it.
    [root] = [s for s in spans if not s.parent_id]
    assert (root.name, root.service) == (HTTP_SPAN, GATEWAY_SERVICE)
    assert all(s.parent_id in by_id for s in spans if s is not root)
    # Every process took part: the gateway started the workflow, the worker ran it.
    assert {s.service for s in spans} == {GATEWAY_SERVICE, WORKER_SERVICE}
    assert by_name[f"StartWorkflow:{WORKFLOW}"].service == GATEWAY_SERVICE
    for name in (f"RunWorkflow:{WORKFLOW}", f"StartActivity:{RENDER_ACTIVITY}"):
        assert by_name[name].service == WORKER_SERVICE
    run_activity = by_name[f"RunActivity:{RENDER_ACTIVITY}"]
    render = by_name["render"]
    assert render.parent_id == run_activity.span_id and render.service == WORKER_SERVICE
    assert _ancestors(run_activity, by_id)[-1] is root
    # The model's steps, each once, below the render and inside its time.
    steps = [s for s in spans if s.name == "model.step"]
    assert sorted(s.attributes["daguerre.step"] for s in steps) == list(range(1, STEPS + 1))
    for step in steps:
        assert step.parent_id == render.span_id
        assert render.start_ns <= step.start_ns <= step.end_ns <= render.end_ns
    # The workflow is the job: its id (the job's) on Temporal's spans, and on the render.
    job_id = by_name[f"StartWorkflow:{WORKFLOW}"].attributes["temporalWorkflowID"]
    assert render.attributes["daguerre.job_id"] == job_id


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    chain = [span]
    while chain[-1].parent_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain
