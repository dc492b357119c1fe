"""A stand-in for the Temporal engine, for gateway tests with no server.

With ``render=True`` it plays a worker too: it walks the job row through running,
a few progress steps (with previews) and success, writing real PNG blobs.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import anyio
from PIL import Image

from daguerre.blob_layout import partial_key, preview_key
from daguerre.domain import (
    ImageRecord,
    JobSpec,
    JobStatus,
    OutputFormat,
    partial_steps,
)
from daguerre.engine.client import EngineUnavailable
from daguerre.store import Store


def png_bytes(size: int, colour: tuple[int, int, int] = (200, 30, 30), fmt: str = "png") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format=OutputFormat(fmt).name)
    return buffer.getvalue()


class FakeEngine:
    def __init__(
        self, store: Store, *, render: bool = True, steps: int = 3, step_delay_s: float = 0.01
    ) -> None:
        self.store = store
        self.render = render
        self.steps = steps
        self.step_delay_s = step_delay_s
        self.available = True
        self.submitted: list[tuple[str, str, int, str]] = []
        self.cancelled: list[str] = []
        self.weights: dict[str, float] = {}
        # What the pretend model understood a prompt as (ImageRecord.revised_prompt).
        self.read_prompt: Callable[[str], str | None] = lambda prompt: None
        self._running: dict[str, asyncio.Task[None]] = {}

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
        if not self.available:
            raise EngineUnavailable("the fake engine is switched off")
        self.submitted.append((job_id, pool, priority, fairness_key))
        self.weights[job_id] = fairness_weight
        if self.render and job_id not in self._running:  # like USE_EXISTING
            self._running[job_id] = asyncio.create_task(self._render(job_id, spec))

    async def _render(self, job_id: str, spec: JobSpec) -> None:
        jobs, blobs = self.store.jobs, self.store.blobs
        await anyio.to_thread.run_sync(jobs.mark_running, job_id, self.steps, None)
        partials = partial_steps(self.steps, spec.partial_images)
        for step in range(1, self.steps + 1):
            await asyncio.sleep(self.step_delay_s)
            if step in partials:  # as the worker does: the partial before the step
                key = partial_key(job_id, partials.index(step), spec.output_format)
                blobs.put(key, png_bytes(spec.width, (step, step, step), spec.output_format))
            blobs.put(preview_key(job_id), png_bytes(8))
            if not await anyio.to_thread.run_sync(
                jobs.record_progress, job_id, step, preview_key(job_id)
            ):
                return
        job = await anyio.to_thread.run_sync(jobs.get, job_id)
        assert job is not None
        media = OutputFormat(spec.output_format).media_type
        images = []
        for index in range(spec.n):
            key = f"images/{job_id}/{index}.{spec.output_format}"
            blobs.put(key, png_bytes(spec.width, fmt=spec.output_format))
            images.append(
                ImageRecord(
                    id=f"img-{job_id}-{index}",
                    job_id=job_id,
                    index=index,
                    account_id=job.account_id,
                    blob_key=key,
                    encoding_key=None,
                    media_type=media,
                    width=spec.width,
                    height=spec.height,
                    revised_prompt=self.read_prompt(spec.prompt),
                )
            )
        await anyio.to_thread.run_sync(jobs.complete, job_id, images)

    async def cancel(self, job_id: str) -> None:
        if not self.available:
            raise EngineUnavailable("the fake engine is switched off")
        self.cancelled.append(job_id)
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
        await anyio.to_thread.run_sync(
            self.store.jobs.finish, job_id, JobStatus.CANCELLED, "cancelled by its owner"
        )

    async def status(self, job_id: str) -> str | None:
        return "RUNNING" if job_id in self._running else None

    async def ping(self) -> bool:
        return self.available

    async def close(self) -> None:
        for task in self._running.values():
            task.cancel()
