"""Prometheus metrics (see gateway/metrics.py for what each one counts). Behind a
bearer key unless the gateway listens on loopback only (``metrics_auth``)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from daguerre.gateway.deps import MetricsDep, ServicesDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(_: MetricsDep, services: ServicesDep) -> Response:
    def collect() -> bytes:
        m, jobs, admission = services.metrics, services.store.jobs, services.admission
        for pool in services.settings.pools:
            backlog = jobs.backlog(pool)
            m.queue_depth.labels(pool).set(backlog)
            m.degraded.labels(pool).set(1 if admission.is_degraded(pool, backlog) else 0)
        m.observe_finished(jobs)
        return m.render_text()

    body = await anyio.to_thread.run_sync(collect)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
