"""Preemption on real processes: a paid job does not wait for a free render to finish.

One worker with a batch budget of one image (the real Temporal server, the shipped
model, slowed down per step so a render lasts a few seconds). A free render is under
way when a paid job arrives. The paid render reaches the worker through the pool's
express queue; the batch is full, so the scheduler pauses the free render at its next
step, the paid job runs, and the free one goes on from where it stopped into exactly
the picture it would have made alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from daguerre.store import Store, open_store
from tests.integration.conftest import unique_tag
from tests.integration.test_access import access
from tests.support.stack import (
    Proc,
    StackConfig,
    free_port,
    start_gateway,
    start_worker,
    wait_until,
)

PROMPT = "a large red circle in the center, on a white background"
STEP_DELAY_S = 0.25


class OneSlot:
    """A gateway and one api worker that steps one image at a time."""

    def __init__(self, tmp_path: Path, temporal_address: str, model: str) -> None:
        values: dict[str, Any] = {
            "access": access(),
            "workflow_execution_timeout_s": 120,
        }
        self.config = StackConfig(
            tmp_path,
            unique_tag(),
            temporal_address,
            model,
            values,
            step_delay_s=STEP_DELAY_S,
            pool={"batch_images": 1},
        )
        self.store: Store = open_store(self.config.settings())
        self.procs: list[Proc] = [start_worker(self.config, "api", tmp_path)]
        port = free_port()
        self.procs.append(start_gateway(self.config, port, tmp_path))
        self.url = f"http://127.0.0.1:{port}"

    def key(self, tier: str) -> str:
        account = self.store.accounts.create_account(tier, tier, "api")
        return self.store.accounts.create_api_key(account.id)

    def submit(self, key: str, **body: Any) -> str:
        body = {"prompt": PROMPT, "size": "64x64", "seed": 7, "steps": 8, **body}
        headers = {"Authorization": f"Bearer {key}"}
        response = httpx.post(f"{self.url}/v1/jobs", json=body, headers=headers, timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.store.close()


@pytest.fixture
def one_slot(tmp_path: Path, temporal_address: str, e2e_model: str) -> Iterator[OneSlot]:
    service = OneSlot(tmp_path, temporal_address, e2e_model)
    yield service
    service.close()


def test_a_paid_job_takes_the_compute_of_a_free_render_which_resumes_exactly(
    one_slot: OneSlot,
) -> None:
    jobs = one_slot.store.jobs
    free_key, pro_key = one_slot.key("free"), one_slot.key("pro")
    free_id = one_slot.submit(free_key)

    def free_is_rendering() -> bool:
        job = jobs.get(free_id)
        return job is not None and job.status.value == "running" and job.step >= 2

    wait_until(free_is_rendering, 60, "the free job did not start rendering")
    pro_id = one_slot.submit(pro_key, prompt="a small blue square on the left")

    def both_done() -> bool:
        return all((j := jobs.get(i)) is not None and j.is_terminal for i in (free_id, pro_id))

    wait_until(both_done, 90, "the jobs did not finish", interval_s=0.1)
    free, pro = jobs.get(free_id), jobs.get(pro_id)
    assert free is not None and pro is not None
    assert (free.status.value, pro.status.value) == ("succeeded", "succeeded")
    # The paid job ran while the free render was paused: it finished first, although
    # it arrived after the free render had started.
    assert pro.finished_at is not None and free.finished_at is not None
    assert pro.finished_at < free.finished_at
    assert pro.preemptions == 0
    assert free.preemptions >= 1
    # It went on from where it stopped, not from the start ...
    assert free.resumed_from_step is not None and free.resumed_from_step >= 2
    # ... and made the same picture as the same job rendered without interruption.
    twin_id = one_slot.submit(free_key)
    wait_until(lambda: (j := jobs.get(twin_id)) is not None and j.is_terminal, 60, "twin")
    twin = jobs.get(twin_id)
    assert twin is not None and twin.preemptions == 0
    blobs = one_slot.store.blobs
    # Pixels, not bytes: each image's signed content credentials carry their own time.
    assert pixels(blobs.get(free.images[0].blob_key)) == pixels(blobs.get(twin.images[0].blob_key))


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGBA").tobytes()
