"""`daguerre worker --pool NAME`: serve one pool's task queue until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from daguerre.config import PoolSettings, Settings
from daguerre.engine.client import connect
from daguerre.engine.tracing import WORKER_SERVICE, flush_tracing, install_tracing
from daguerre.engine.workflows import GenerateImage, GenerateImageWithActivity
from daguerre.priority import control_queue, express_queue, webhook_queue
from daguerre.store import open_store
from daguerre.workers.activities import RenderActivities, render_activities
from daguerre.workers.endpoint import WorkerHealth, worker_endpoint
from daguerre.workers.engine_client import Driver
from daguerre.workers.metrics import WorkerMetrics
from daguerre.workers.registration import Registration, registered
from daguerre.workers.webhooks import WebhookActivities

log = logging.getLogger(__name__)

# Temporal's sandbox re-imports a workflow's modules for every new workflow run, which
# profiling under a surge showed to be most of a worker's CPU (compiling and running
# engine/workflows.py again for each job, on the event loop that also drives renders).
# "fast" imports them once. That also passes the workflow module's own imports (e.g.
# datetime) through unchecked, so the tests run the workflow under "strict", where any
# wall clock, randomness or I/O in workflow code fails.
WORKFLOW_RUNNERS = {
    "strict": SandboxedWorkflowRunner(),
    "fast": SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
    ),
}


async def connect_with_retry(settings: Settings, timeout_s: float = 60.0) -> Client:
    """Temporal may still be starting (or restarting): keep trying for a while."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.2
    while True:
        try:
            return await connect(settings)
        except RuntimeError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def configured_pool(settings: Settings, pool: str) -> PoolSettings:
    """The settings of ``pool``; for a pool that is not configured, a ValueError that names
    the configured ones (the one check behind `daguerre worker` and the worker itself)."""
    if pool not in settings.pools:
        raise ValueError(f"unknown pool {pool!r}; configured pools: {', '.join(settings.pools)}")
    return settings.pools[pool]


@asynccontextmanager
async def pool_workers(
    settings: Settings, pool: str, client: Client, driver: Driver | None = None
) -> AsyncIterator[list[Worker]]:
    """The Temporal workers of one pool, running until the block ends. The engine's core
    (and the model) runs in a process of its own unless ``driver`` says otherwise. The
    process reports itself to the worker registry meanwhile, and serves its health and
    metrics endpoint when ``worker_metrics_port`` is set (from before the model loads)."""
    pool_settings = configured_pool(settings, pool)
    store = open_store(settings)
    webhooks = WebhookActivities(store, settings)
    health = WorkerHealth(client, store, WorkerMetrics(pool=pool))
    try:
        async with (
            worker_endpoint(settings, health),
            render_activities(store, settings, pool_settings, driver, health.metrics) as activities,
        ):
            health.engine = activities.engine
            workers = temporal_workers(settings, pool_settings, client, activities, webhooks)
            tasks = [asyncio.create_task(w.run()) for w in workers]
            # Per job queue, as jobs_worker counts them.
            slots = activities.batch_images + pool_settings.waiting_room
            registration = Registration(
                store, pool, slots, activities.batch_images, activities.metrics
            )
            try:
                async with registered(registration, settings.worker_report_s):
                    yield workers
            finally:
                await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        store.close()


def temporal_workers(
    settings: Settings,
    pool_settings: PoolSettings,
    client: Client,
    activities: RenderActivities,
    webhooks: WebhookActivities,
) -> list[Worker]:
    """One Temporal worker per queue of the pool: its job queue (and express queue), its
    control queue (bookkeeping) and its webhook queue."""
    control = control_queue(pool_settings.task_queue)
    workers = [
        jobs_worker(settings, pool_settings, client, activities, pool_settings.task_queue),
        Worker(
            client,
            task_queue=control,
            # notify: only deliveries scheduled here before webhooks had their own
            # queue (workflows that replay without the patch in _notify).
            activities=[activities.finalize, webhooks.notify],
            max_concurrent_activities=4,
            graceful_shutdown_timeout=timedelta(seconds=2),
        ),
        # Webhook deliveries, on slots of their own: receivers that hang hold
        # these, never the bookkeeping's above.
        Worker(
            client,
            task_queue=webhook_queue(control),
            activities=[webhooks.notify],
            max_concurrent_activities=settings.webhook_concurrency,
            graceful_shutdown_timeout=timedelta(seconds=2),
        ),
    ]
    if pool_settings.express_priority:
        # High-priority jobs: their workflow tasks and renders never queue behind
        # the main queue's (a surge's) on the server, nor for this process's slots.
        express = express_queue(pool_settings.task_queue)
        workers.append(jobs_worker(settings, pool_settings, client, activities, express))
    return workers


def jobs_worker(
    settings: Settings,
    pool_settings: PoolSettings,
    client: Client,
    activities: RenderActivities,
    task_queue: str,
) -> Worker:
    """Workflows and renders of one of the pool's two job queues."""
    # Renders one worker process holds, per job queue: its batch budget (at most
    # one job per image of it runs) plus a waiting room, so that the next renders
    # are already here, in priority order, when a step frees room in the batch.
    # A render is a local activity inside its workflow task, so it holds a
    # workflow task slot too (plus a few for tasks that start no render: a job's
    # last task, cancels).
    slots = activities.batch_images + pool_settings.waiting_room
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[GenerateImage, GenerateImageWithActivity],
        workflow_runner=WORKFLOW_RUNNERS[settings.workflow_sandbox],
        max_concurrent_workflow_tasks=slots + 4,
        activities=[activities.render],
        max_concurrent_local_activities=slots,
        # Renders of workflows started before renders were local.
        max_concurrent_activities=slots,
        # Eager dispatch would hand a job's render straight back to this
        # worker, skipping the queue's priority and fairness order.
        disable_eager_activity_execution=True,
        graceful_shutdown_timeout=timedelta(seconds=2),
    )


async def run_worker(settings: Settings, pool: str) -> None:
    """Start the engine (which loads the model), connect, and serve until SIGINT/SIGTERM."""
    configured_pool(settings, pool)  # before connecting, which may take a while
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    install_tracing(settings, WORKER_SERVICE)  # before the client, which carries traces
    client = await connect_with_retry(settings)
    try:
        async with pool_workers(settings, pool, client):
            log.info("serving pool %s on %s", pool, settings.pools[pool].task_queue)
            await stop.wait()
    finally:
        flush_tracing()  # the process leaves without its exit handlers (serve.py)
