"""The settings section for traces: OpenTelemetry spans, one trace per job, sent by OTLP.

Its own section (a mixin of `Settings`, names flat: ``DAGUERRE_OTLP_TRACES_ENDPOINT``).
Tracing is off unless an endpoint is set: no provider, no exporter, no span recorded,
and nothing sent anywhere (docs/tracing.md).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class TracingSection(BaseModel):
    """Traces: one OpenTelemetry trace per job, from the HTTP request to the model steps.

    The gateway's request, Temporal's workflow and activity, and the worker's render and
    its steps (docs/tracing.md)."""

    otlp_traces_endpoint: str | None = Field(
        default=None,
        description="Where the gateway and the workers send their spans: an OTLP/HTTP "
        "(protobuf) traces URL, e.g. `http://localhost:4318/v1/traces`. None: no tracing "
        "at all (nothing recorded, nothing exported). The exporter also reads the standard "
        "`OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `..._TIMEOUT` and `..._CERTIFICATE` variables.",
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of jobs traced, decided once per trace at its root (the HTTP "
        "request); every later span follows that decision, so a job is traced whole or "
        "not at all.",
    )
