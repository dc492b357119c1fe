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
        m, admission = services.metrics, services.admission
        # One query for the queue: each pool's backlog (degraded mode) and, on the
        # replica holding the lease, the queue-depth gauges.
        depth = services.store.queue_stats.depth()
        for pool in services.settings.pools:
            backlog = sum(n for (of, _, _), n in depth.items() if of == pool)
            m.degraded.labels(pool).set(1 if admission.is_degraded(pool, backlog) else 0)
        m.observe_queue(services.store.leases, depth)
        return m.render_text()

    body = await run_blocking(collect)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
