"""Tracing is off by default: no provider, no exporter, no interceptor, no SDK loaded, and
FastAPI's own telemetry off. With an endpoint, each process gets a provider that batches
its spans by OTLP, named after the process (tests/integration/test_tracing.py sends them)."""

from __future__ import annotations

import json
import subprocess
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from daguerre.config import Settings
from daguerre.engine.tracing import (
    GATEWAY_SERVICE,
    build_provider,
    install_tracing,
    temporal_interceptors,
)
from daguerre.gateway.api.request_tracing import http_telemetry
from tests.support.stack import REPO

ENDPOINT = "http://collector.invalid:4318/v1/traces"


def test_without_an_endpoint_nothing_is_installed() -> None:
    settings = Settings()
    assert settings.otlp_traces_endpoint is None
    assert build_provider(settings, GATEWAY_SERVICE) is None
    assert install_tracing(settings, GATEWAY_SERVICE) is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert temporal_interceptors(settings) == []
    telemetry = http_telemetry(settings)
    assert telemetry["tracing"] is False and telemetry["auto_configure"] is False
    assert telemetry["metrics"] is False and telemetry["logs"] is False


def test_a_gateway_and_a_worker_without_an_endpoint_never_load_the_sdk() -> None:
    """Even with FastAPI's own variables set: only our setting turns export on."""
    code = (
        "import sys, json\n"
        "from opentelemetry import trace\n"
        "from daguerre.config import Settings\n"
        "from daguerre.gateway.app import create_app\n"
        "import daguerre.workers.worker\n"
        "create_app(Settings())\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')),"
        " type(trace.get_tracer_provider()).__name__]))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.invalid:4318",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == [[], "ProxyTracerProvider"]


def test_with_an_endpoint_a_provider_names_its_process_and_follows_the_root() -> None:
    settings = Settings(otlp_traces_endpoint=ENDPOINT, trace_sample_ratio=0.25)
    provider = build_provider(settings, GATEWAY_SERVICE)
    assert isinstance(provider, TracerProvider)
    try:
        assert provider.resource.attributes["service.name"] == GATEWAY_SERVICE
        # A root (the HTTP request) samples a quarter; every other span follows its parent.
        assert "ParentBased" in provider.sampler.get_description()
        assert "TraceIdRatioBased{0.25}" in provider.sampler.get_description()
    finally:
        provider.shutdown()
    [interceptor] = temporal_interceptors(settings)
    assert type(interceptor).__name__ == "TracingInterceptor"
