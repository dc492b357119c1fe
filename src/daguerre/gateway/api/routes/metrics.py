"""Prometheus metrics (see gateway/metrics.py for what each one counts). Behind a
bearer key unless the gateway listens on loopback only (``metrics_auth``)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from daguerre.gateway.api.deps import MetricsDep, ServicesDep
from daguerre.store.threads import run_blocking

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(_: MetricsDep, services: ServicesDep) -> Response:
    def collect() -> bytes:
        m, stats, admission = services.metrics, services.store.queue_stats, services.admission
        for pool in services.settings.pools:
            m.degraded.labels(pool).set(
                1 if admission.is_degraded(pool, stats.backlog(pool)) else 0
            )
        m.observe_queue(services.store)
        return m.render_text()

    body = await run_blocking(collect)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
