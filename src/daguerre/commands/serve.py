"""`daguerre gateway` and `daguerre worker`: the two long-running process kinds."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from daguerre.config import Settings
from daguerre.procs import die_with_parent
from daguerre.redact import install_log_redaction


def _logging() -> None:
    logging.basicConfig(
        level=Settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Schema checks at every start-up are routine, not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # No log line carries a URL's credentials or query, nor a key or signature (this
    # covers uvicorn's access log, whose handlers uvicorn adds later): see redact.py.
    install_log_redaction()


def serve_gateway(host: str | None, port: int | None) -> None:
    import uvicorn

    die_with_parent()
    _logging()
    settings = Settings()
    if host:
        # The app's own Settings must see the address it listens on: /metrics needs a
        # key unless that is a loopback address (metrics_auth "auto").
        os.environ["DAGUERRE_HOST"] = host
    uvicorn.run(
        "daguerre.gateway.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        # Open SSE streams would otherwise hold a shutdown forever.
        timeout_graceful_shutdown=5,
    )


def serve_worker(pool: str) -> None:
    from daguerre.workers.worker import configured_pool, run_worker

    die_with_parent()
    _logging()
    settings = Settings()
    try:
        configured_pool(settings, pool)
    except ValueError as err:
        sys.exit(str(err))
    asyncio.run(run_worker(settings, pool))
    # Temporal's core threads can trip over interpreter teardown ("PyGILState_Release");
    # everything is closed by now, so leave without it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
