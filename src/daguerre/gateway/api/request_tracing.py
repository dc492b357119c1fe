"""The HTTP request's span: the root of a job's trace.

FastAPI records it itself (its native OpenTelemetry support: one server span per request,
named by method and route template, with spans for dependencies and the endpoint below
it); the gateway only says with which provider, and turns everything else of FastAPI's
telemetry off: its metrics and logs (the gateway has its own /metrics) and its own
exporter set-up from ``OTEL_*`` variables (only ``otlp_traces_endpoint`` exports).
With tracing off, FastAPI's telemetry is off entirely.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig

from daguerre.config import Settings
from daguerre.engine.tracing import GATEWAY_SERVICE, install_tracing

# Probes and scrapes: a trace each every few seconds, none of them a job's.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def http_telemetry(settings: Settings) -> TelemetryConfig:
    """FastAPI's telemetry configuration for this gateway (installing the process's
    tracer provider when tracing is on)."""
    off: TelemetryConfig = {"metrics": False, "logs": False, "auto_configure": False}
    provider = install_tracing(settings, GATEWAY_SERVICE)
    if provider is None:
        return {**off, "tracing": False}
    return {**off, "tracing": True, "tracer_provider": provider, "exclude": _untraced}


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS
