"""The facade the gateway uses to talk to Temporal: submit, cancel, status, ping.

It connects lazily (and again after a failure), so a gateway can start before the
Temporal server and ride out the server's restarts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from daguerre.config import Settings
from daguerre.domain import JobSpec
from daguerre.engine.contracts import WORKFLOW, GenerateImageInput, RenderPolicy
from daguerre.engine.tls import connect_options
from daguerre.engine.tracing import temporal_interceptors
from daguerre.priority import control_queue, job_queue


class EngineUnavailable(RuntimeError):
    """Temporal could not be reached (after a few quick retries)."""


class WorkflowClient(Protocol):
    async def submit(
        self,
        job_id: str,
        spec: JobSpec,
        pool: str,
        priority: int,
        fairness_key: str,
        fairness_weight: float = 1.0,
        webhook: bool = False,
        tier: str | None = None,
    ) -> None:
        """Start the job's workflow; submitting the same job id again does nothing.
        ``priority`` is the Temporal priority key (1 runs first); ``fairness_key`` (the
        account) shares each priority level out by ``fairness_weight``. The workflow's
        activities inherit all three. ``tier`` labels the worker's wait and render
        metrics."""
        ...

    async def cancel(self, job_id: str) -> None: ...

    async def status(self, job_id: str) -> str | None:
        """The workflow's execution status name (e.g. "RUNNING"), or None if unknown."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def render_policy(settings: Settings) -> RenderPolicy:
    return RenderPolicy(
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        attempt_timeout_s=settings.render_attempt_timeout_s,
        max_attempts=settings.render_max_attempts,
        initial_interval_s=settings.retry_initial_interval_s,
    )


async def connect(settings: Settings, address: str | None = None) -> Client:
    """A client for the configured cluster: its address and namespace, and TLS, mutual TLS
    or an API key as the settings say (engine/tls.py). An unreadable TLS file raises
    TemporalTLSError (a ValueError: no retry fixes it). With tracing on, the client (and
    every worker built on it) carries each job's trace through Temporal (engine/tracing.py)."""
    target = address or settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        interceptors=temporal_interceptors(settings),
        **connect_options(settings),
    )


class TemporalWorkflowClient:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def _get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect(self._settings)
                except (RuntimeError, OSError) as err:
                    raise EngineUnavailable(f"cannot reach Temporal: {err}") from err
            return self._client

    async def submit(
        self,
        job_id: str,
        spec: JobSpec,
        pool: str,
        priority: int,
        fairness_key: str,
        fairness_weight: float = 1.0,
        webhook: bool = False,
        tier: str | None = None,
    ) -> None:
        workflow_input = GenerateImageInput(
            job_id=job_id,
            spec=spec,
            policy=render_policy(self._settings),
            webhook=webhook,
            control_queue=control_queue(self._settings.pools[pool].task_queue),
            account_id=fairness_key,
            tier=tier,
        )
        options = self._start_options(pool, priority, fairness_key, fairness_weight)
        delays = [0.2, 0.5, 1.0]
        for attempt in range(len(delays) + 1):
            try:
                client = await self._get()
                await client.start_workflow(WORKFLOW, workflow_input, id=job_id, **options)
                return
            except WorkflowAlreadyStartedError:
                return
            except (EngineUnavailable, RPCError) as err:
                if isinstance(err, RPCError) and err.status not in _TRANSIENT:
                    raise
                if attempt == len(delays):
                    raise EngineUnavailable(str(err)) from err
                await asyncio.sleep(delays[attempt])

    def _start_options(
        self, pool: str, priority: int, fairness_key: str, fairness_weight: float
    ) -> dict[str, Any]:
        """How a job's workflow starts: its queue, id policies, timeouts and priority."""
        settings = self._settings
        timeout = settings.workflow_execution_timeout_s
        queue = settings.pools[pool].task_queue
        return {
            "task_queue": job_queue(queue, priority, settings.pools[pool].express_priority),
            # A second submit of a running job attaches to it; of a finished one, is
            # refused (and ignored by submit): never two workflows for one job.
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "execution_timeout": timedelta(seconds=timeout) if timeout else None,
            # The render is a local activity in the workflow task: this is how soon a
            # task whose worker died goes to another worker.
            "task_timeout": timedelta(seconds=settings.heartbeat_timeout_s),
            # Fairness keys are at most 64 bytes; account ids are far shorter.
            "priority": Priority(
                priority_key=priority,
                fairness_key=fairness_key[:64],
                fairness_weight=fairness_weight,
            ),
            "rpc_timeout": timedelta(seconds=10),
        }

    async def cancel(self, job_id: str) -> None:
        client = await self._get()
        try:
            await client.get_workflow_handle(job_id).cancel(rpc_timeout=timedelta(seconds=10))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise EngineUnavailable(str(err)) from err

    async def status(self, job_id: str) -> str | None:
        client = await self._get()
        try:
            desc = await client.get_workflow_handle(job_id).describe(
                rpc_timeout=timedelta(seconds=5)
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise EngineUnavailable(str(err)) from err
        status: WorkflowExecutionStatus | None = desc.status
        return status.name if status is not None else None

    async def ping(self) -> bool:
        try:
            client = await self._get()
            return await client.service_client.check_health(timeout=timedelta(seconds=2))
        except (EngineUnavailable, RPCError):
            return False

    async def close(self) -> None:
        # The SDK has no explicit close; dropping the last reference lets the core client go.
        self._client = None


_TRANSIENT = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.ABORTED,
    RPCStatusCode.INTERNAL,
    RPCStatusCode.UNKNOWN,
}
