"""Workflow and activity inputs survive Temporal's JSON converter unchanged."""

from __future__ import annotations

from temporalio.converter import DataConverter

from daguerre.config import PoolSettings, Settings
from daguerre.domain import JobSpec
from daguerre.engine.client import workflow_queue
from daguerre.engine.contracts import (
    GenerateImageInput,
    RenderPolicy,
    control_queue,
    express_queue,
)


def test_inputs_round_trip_through_the_converter() -> None:
    value = GenerateImageInput(
        job_id="j1",
        spec=JobSpec(prompt="p", model="builtin", n=2, width=64, height=64, steps=8, seed=3),
        policy=RenderPolicy(heartbeat_timeout_s=2.0, max_attempts=3),
        control_queue="daguerre-api-control",
    )
    converter = DataConverter.default.payload_converter
    (payload,) = converter.to_payloads([value])
    (back,) = converter.from_payloads([payload], [GenerateImageInput])
    assert back == value


def test_control_queue_is_per_pool() -> None:
    assert control_queue("daguerre-api") == "daguerre-api-control"


def test_high_priority_jobs_take_the_pools_express_queue() -> None:
    settings = Settings(
        pools={
            "api": PoolSettings(task_queue="q-api"),
            "chat": PoolSettings(task_queue="q-chat", express_priority=1),
            "batch": PoolSettings(task_queue="q-batch", express_priority=0),
        }
    )
    assert express_queue("q-api") == "q-api-express"
    # The default lane takes the shipped pro (1) and plus (2); free (3) and deferred
    # work (5) stay on the main queue.
    assert [workflow_queue(settings, "api", p) for p in (1, 2, 3, 5)] == [
        "q-api-express",
        "q-api-express",
        "q-api",
        "q-api",
    ]
    assert [workflow_queue(settings, "chat", p) for p in (1, 2)] == ["q-chat-express", "q-chat"]
    assert workflow_queue(settings, "batch", 1) == "q-batch"  # no express lane
