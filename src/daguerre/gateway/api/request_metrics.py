"""Every HTTP request counted by route, method, status and tier, and timed by route and tier:
``daguerre_http_requests_total`` and ``daguerre_http_request_seconds``. Each gateway
counts its own requests, so the figures of N replicas are summed (``sum by (route)``).

The route is the matched path template (``/v1/jobs/{job_id}``), never the raw path: ids
and probes would make a series each. A request no route matched counts as ``unmatched``.
The tier is the caller's, once its key was read (optional_account stores it in the
request's state); ``none`` for anonymous requests and refused keys.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestMetricsMiddleware:
    """Counts into the app's Services' metrics (made at start-up, after the middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what a request that raised past every handler came to

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            services = getattr(getattr(scope.get("app"), "state", None), "services", None)
            if services is not None:
                route = _route(scope)
                tier = str(scope.get("state", {}).get("tier", "none"))
                metrics = services.metrics
                metrics.http_requests.labels(route, scope["method"], str(status), tier).inc()
                metrics.http_seconds.labels(route, tier).observe(time.perf_counter() - started)


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
