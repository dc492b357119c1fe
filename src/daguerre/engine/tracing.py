"""A process's traces: its OpenTelemetry tracer provider, and Temporal's interceptor that
carries a job's trace from the gateway's start of its workflow into the worker.

One trace per job: the gateway's HTTP request span is the root; Temporal's
``TracingInterceptor`` puts the current span into the workflow's headers when the gateway
starts it, and the worker's workflow and render activity spans continue from there;
the worker's render span and its model-step spans hang below the render activity's
(workers/render_tracing.py). Each process exports its own spans to the same collector,
which joins them by trace id.

Off unless ``otlp_traces_endpoint`` is set: then nothing here installs a provider, the
OpenTelemetry API stays its no-op self, no interceptor is added and the SDK is never
imported. It lives in engine/ because both the gateway and the workers stand on it, as
they do on the Temporal client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry import trace

from daguerre.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

log = logging.getLogger(__name__)

GATEWAY_SERVICE = "daguerre-gateway"
WORKER_SERVICE = "daguerre-worker"

# The provider this process installed (a process has one global provider, set once).
_installed: TracerProvider | None = None


def build_provider(settings: Settings, service: str) -> TracerProvider | None:
    """A tracer provider that batches spans to the settings' OTLP endpoint, sampling
    ``trace_sample_ratio`` of the traces that start here and following the parent's
    decision for the rest; None when tracing is off."""
    endpoint = settings.otlp_traces_endpoint
    if not endpoint:
        return None
    # Imported only here: a process that does not trace never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def install_tracing(settings: Settings, service: str) -> TracerProvider | None:
    """Make this process trace as ``service`` (once: later calls return the same
    provider); None, and nothing installed, when tracing is off."""
    global _installed
    if _installed is None:
        provider = build_provider(settings, service)
        if provider is None:
            return None
        trace.set_tracer_provider(provider)
        _installed = provider
        log.info("tracing on: %s sends spans to %s", service, settings.otlp_traces_endpoint)
    return _installed


def flush_tracing(timeout_s: float = 5.0) -> None:
    """Send the spans still batched (before a process leaves without running its exit
    handlers, as a worker does)."""
    if _installed is not None:
        _installed.force_flush(int(timeout_s * 1000))


def temporal_interceptors(settings: Settings) -> list[Interceptor]:
    """What a Temporal client needs to carry traces: the SDK's tracing interceptor
    (which its workers inherit), or nothing when tracing is off."""
    if not settings.otlp_traces_endpoint:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
