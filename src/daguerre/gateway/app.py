"""The FastAPI application. ``create_app()`` is also uvicorn's factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from daguerre.config import Settings
from daguerre.engine.client import WorkflowClient
from daguerre.gateway.access.ratelimit import RateLimitHeadersMiddleware
from daguerre.gateway.api import docs
from daguerre.gateway.api.errors import BodyLimitMiddleware, install_error_handlers
from daguerre.gateway.api.openapi import install_openapi
from daguerre.gateway.api.refusal_replay import RefusalReplayMiddleware
from daguerre.gateway.api.request_metrics import RequestMetricsMiddleware
from daguerre.gateway.api.request_tracing import http_telemetry
from daguerre.gateway.api.routes import (
    admin,
    conversations,
    files,
    health,
    images,
    jobs,
    metrics,
    models,
    responses,
)
from daguerre.gateway.api.routes import webhooks as webhook_routes
from daguerre.gateway.api.routes.web import router as web_router
from daguerre.gateway.api.security_headers import SecurityHeadersMiddleware
from daguerre.gateway.api.text_guard import TextGuardMiddleware
from daguerre.gateway.context import Services
from daguerre.store import Store


def create_app(
    settings: Settings | None = None,
    *,
    workflows: WorkflowClient | None = None,
    store: Store | None = None,
) -> FastAPI:
    """The gateway. ``workflows`` and ``store`` replace the real ones in tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, workflows=workflows, store=store)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="Daguerre",
        version=version("daguerre"),
        summary="OpenAI-compatible image generation on Temporal.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc load CDN scripts: see docs.py.
        redoc_url=None,
        telemetry=http_telemetry(settings),  # request spans: a job's trace's root
    )
    install_error_handlers(app)
    install_openapi(app)
    _add_middleware(app, settings)
    for module in (health, images, files, responses, jobs, models, conversations, admin, metrics):
        app.include_router(module.router)
    app.include_router(webhook_routes.router)  # the account's webhook signing secret
    webhook_routes.document_events(app)
    app.include_router(web_router)  # the chat page at /
    if settings.api_docs:
        app.include_router(docs.router)
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # Middleware runs outermost last added: TextGuard reads bodies that BodyLimit bounds.
    app.add_middleware(TextGuardMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        path_limits={
            "/v1/images/edits": settings.max_upload_bytes,
            "/v1/files": settings.max_upload_bytes,
        },
    )
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RefusalReplayMiddleware)  # before FastAPI's parsing, after metrics
    app.add_middleware(SecurityHeadersMiddleware)  # on every answer
    app.add_middleware(RequestMetricsMiddleware)  # outermost: counts every answer, as sent
