"""A worker's health and metrics endpoint, when ``worker_metrics_port`` is set:

- ``/healthz``: 200 while the process runs (a liveness probe);
- ``/readyz``: 200 when Temporal answers, the engine process is up and the database
  answers; 503 otherwise, with a JSON body that names what is not (a readiness probe);
- ``/metrics``: the worker's Prometheus metrics (workers/metrics.py).

A worker serves no other HTTP (a worker never serves the API): this is a few lines of
HTTP/1.1 on ``asyncio.start_server``, on the worker's own event loop, rather than a web
framework. It starts before the engine loads its model, so a liveness probe passes while
the model loads and the readiness probe says ``engine: starting``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from temporalio.client import Client

from daguerre.config import Settings
from daguerre.store import Store
from daguerre.store.threads import run_blocking
from daguerre.workers.engine_client import Engine
from daguerre.workers.metrics import WorkerMetrics

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT_S = 5.0
_MAX_HEAD = 8192
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass
class WorkerHealth:
    """What the endpoint reports on; the engine is set once it has started."""

    client: Client
    store: Store
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    engine: Engine | None = None

    def engine_pid(self) -> int | None:
        return self.engine.pid if self.engine is not None else None

    async def checks(self) -> dict[str, str]:
        """Each dependency's state: "ok", or why not."""
        checks = {"temporal": "ok" if await self._temporal() else "unavailable"}
        if self.engine is None:
            checks["engine"] = "starting"
        else:
            checks["engine"] = "ok" if self.engine.pid is not None else "down"
        try:
            await run_blocking(self.store.ping)
            checks["database"] = "ok"
        except Exception as err:  # any failure means "not ready", whatever its kind
            checks["database"] = f"unavailable: {type(err).__name__}"
        return checks

    async def _temporal(self) -> bool:
        try:
            return await self.client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception:  # RPCError, or a connection that is gone: not ready
            return False


class WorkerEndpoint:
    def __init__(self, health: WorkerHealth) -> None:
        self._health = health
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); the port it listens on."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path = _request_line(head)
            status, content_type, body = await self._answer(method, path)
            writer.write(_response(status, content_type, b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that says nothing useful gets nothing
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path not in ("/healthz", "/readyz", "/metrics"):
            return _json(404, {"error": f"no such path: {path[:100]}"})
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET and HEAD"})
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            checks = await self._health.checks()
            ready = all(value == "ok" for value in checks.values())
            body = {"status": "ready" if ready else "not ready", "checks": checks}
            return _json(200 if ready else 503, body)
        health = self._health
        await run_blocking(health.metrics.engine_process, health.engine_pid())
        return 200, CONTENT_TYPE_LATEST, generate_latest(health.metrics.registry)


def _request_line(head: bytes) -> tuple[str, str]:
    if len(head) > _MAX_HEAD:
        raise ValueError("request head too long")
    method, path, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return method, path


def _json(status: int, body: object) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


def _response(status: int, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


@asynccontextmanager
async def worker_endpoint(settings: Settings, health: WorkerHealth) -> AsyncIterator[int | None]:
    """The endpoint for the block, when ``worker_metrics_port`` is set; its port (None
    when none is set)."""
    if settings.worker_metrics_port is None:
        yield None
        return
    endpoint = WorkerEndpoint(health)
    port = await endpoint.start(settings.worker_metrics_host, settings.worker_metrics_port)
    log.info(
        "worker health and metrics on http://%s:%d (/healthz, /readyz, /metrics)",
        settings.worker_metrics_host,
        port,
    )
    try:
        yield port
    finally:
        await endpoint.close()
