"""The FastAPI application. ``create_app()`` is also uvicorn's factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from daguerre.config import Settings
from daguerre.engine.client import Engine
from daguerre.gateway.errors import BodyLimitMiddleware, install_error_handlers
from daguerre.gateway.ratelimit import RateLimitHeadersMiddleware
from daguerre.gateway.routes import admin, conversations, health, images, jobs, metrics, models
from daguerre.gateway.services import Services
from daguerre.store import Store
from daguerre.web import router as web_router


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, store: Store | None = None
) -> FastAPI:
    """The gateway. ``engine`` and ``store`` replace the real ones in tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, engine=engine, store=store)
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
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        path_limits={"/v1/images/edits": settings.max_upload_bytes},
    )
    app.add_middleware(RateLimitHeadersMiddleware)
    for module in (health, images, jobs, models, conversations, admin, metrics):
        app.include_router(module.router)
    app.include_router(web_router)  # the chat page at /
    return app
