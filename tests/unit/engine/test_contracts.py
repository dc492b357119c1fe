"""Workflow and activity inputs survive Temporal's JSON converter unchanged."""

from __future__ import annotations

from temporalio.converter import DataConverter

from daguerre.domain import JobSpec
from daguerre.engine.contracts import GenerateImageInput, RenderPolicy


def test_inputs_round_trip_through_the_converter() -> None:
    value = GenerateImageInput(
        job_id="j1",
        spec=JobSpec(prompt="p", model="builtin", n=2, width=64, height=64, steps=8, seed=3),
        policy=RenderPolicy(heartbeat_timeout_s=2.0, max_attempts=3),
        control_queue="daguerre-api-control",
        account_id="acct_1",
    )
    converter = DataConverter.default.payload_converter
    (payload,) = converter.to_payloads([value])
    (back,) = converter.from_payloads([payload], [GenerateImageInput])
    assert back == value
