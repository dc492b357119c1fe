"""The native job API: submit (idempotently), look, cancel, and follow events."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tests.unit.gateway.conftest import Gateway


async def wait_status(gateway: Gateway, job_id: str, status: str) -> dict[str, Any]:
    for _ in range(200):
        job = (await gateway.client.get(f"/v1/jobs/{job_id}", headers=gateway.auth())).json()
        if job["status"] == status:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never became {status}: {job}")


async def test_submit_returns_202_and_the_job(gateway: Gateway) -> None:
    gateway.engine.render = False
    response = await gateway.client.post(
        "/v1/jobs",
        json={"prompt": "a red circle", "size": "128x128", "n": 2},
        headers=gateway.auth(),
    )
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert job["queue_position"] == 0
    assert job["size"] == "128x128" and job["n"] == 2 and job["model"] == "builtin"
    assert job["events_url"].endswith(f"/v1/jobs/{job['id']}/events")
    # alice is a pro on the api product: the api pool, priority 1, fairness by account
    (job_id, pool, priority, fairness), *_ = gateway.engine.submitted
    assert (job_id, pool, priority) == (job["id"], "api", 1)
    assert fairness.startswith("acct_")


async def test_queue_position_counts_jobs_ahead_in_the_same_pool(gateway: Gateway) -> None:
    gateway.engine.render = False
    ids = []
    for i in range(3):
        body = {"prompt": f"p{i}", "size": "64x64"}
        ids.append(
            (await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())).json()
        )
    assert [j["queue_position"] for j in ids] == [0, 1, 2]
    # bob is on the chat product, so another pool: nobody ahead of him
    other = await gateway.client.post(
        "/v1/jobs", json={"prompt": "x"}, headers=gateway.auth(gateway.other_key)
    )
    assert other.json()["queue_position"] == 0
    assert gateway.engine.submitted[-1][1:3] == ("chat", 3)


async def test_estimated_wait_uses_recent_render_times(gateway: Gateway) -> None:
    done = await gateway.client.post("/v1/jobs", json={"prompt": "a"}, headers=gateway.auth())
    await wait_status(gateway, done.json()["id"], "succeeded")
    gateway.engine.render = False
    queued = await gateway.client.post("/v1/jobs", json={"prompt": "b"}, headers=gateway.auth())
    assert queued.json()["estimated_wait_s"] is not None


async def test_same_client_id_is_one_job(gateway: Gateway) -> None:
    body = {"prompt": "once", "size": "64x64", "id": "my-job-1"}
    first, second = await asyncio.gather(
        gateway.client.post("/v1/jobs", json=body, headers=gateway.auth()),
        gateway.client.post("/v1/jobs", json=body, headers=gateway.auth()),
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] == "my-job-1"
    await wait_status(gateway, "my-job-1", "succeeded")
    again = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert again.json()["status"] == "succeeded"


async def test_idempotency_key_is_one_job_per_account(gateway: Gateway) -> None:
    body = {"prompt": "once", "size": "64x64"}
    headers = {**gateway.auth(), "Idempotency-Key": "k1"}
    first = await gateway.client.post("/v1/jobs", json=body, headers=headers)
    second = await gateway.client.post("/v1/jobs", json=body, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    theirs = {**gateway.auth(gateway.other_key), "Idempotency-Key": "k1"}
    third = await gateway.client.post("/v1/jobs", json=body, headers=theirs)
    assert third.json()["id"] != first.json()["id"]


async def test_reused_id_conflicts(gateway: Gateway) -> None:
    body = {"prompt": "one", "size": "64x64", "id": "taken"}
    assert (await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())).is_success
    other = await gateway.client.post(
        "/v1/jobs", json=body, headers=gateway.auth(gateway.other_key)
    )
    assert other.status_code == 409 and other.json()["error"]["param"] == "id"
    changed = {**body, "prompt": "two"}
    mine = await gateway.client.post("/v1/jobs", json=changed, headers=gateway.auth())
    assert mine.status_code == 409


async def test_bad_client_id_is_400(gateway: Gateway) -> None:
    body = {"prompt": "a", "id": "../etc/passwd"}
    response = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert response.status_code == 400 and response.json()["error"]["param"] == "id"


async def test_cancel(gateway: Gateway) -> None:
    gateway.engine.render = False
    job = (
        await gateway.client.post("/v1/jobs", json={"prompt": "a"}, headers=gateway.auth())
    ).json()
    response = await gateway.client.delete(f"/v1/jobs/{job['id']}", headers=gateway.auth())
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert gateway.engine.cancelled == [job["id"]]
    # cancelling again is harmless
    again = await gateway.client.delete(f"/v1/jobs/{job['id']}", headers=gateway.auth())
    assert again.json()["status"] == "cancelled"


async def test_cancel_a_finished_job_is_409(gateway: Gateway) -> None:
    job = (
        await gateway.client.post("/v1/jobs", json={"prompt": "a"}, headers=gateway.auth())
    ).json()
    await wait_status(gateway, job["id"], "succeeded")
    response = await gateway.client.delete(f"/v1/jobs/{job['id']}", headers=gateway.auth())
    assert response.status_code == 409


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_events_stream_state_progress_then_completed(gateway: Gateway) -> None:
    gateway.engine.step_delay_s = 0.05
    job = (
        await gateway.client.post("/v1/jobs", json={"prompt": "a"}, headers=gateway.auth())
    ).json()
    response = await gateway.client.get(f"/v1/jobs/{job['id']}/events", headers=gateway.auth())
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "state" and names[-1] == "completed"
    progress = [data for name, data in events if name == "progress"]
    assert progress, names
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    previews = [p["preview_png_b64"] for p in progress if "preview_png_b64" in p]
    assert previews and base64.b64decode(previews[-1]).startswith(b"\x89PNG")
    assert events[-1][1]["images"][0]["url"]


async def test_events_for_a_finished_job_give_state_and_outcome(gateway: Gateway) -> None:
    job = (
        await gateway.client.post("/v1/jobs", json={"prompt": "a"}, headers=gateway.auth())
    ).json()
    await wait_status(gateway, job["id"], "succeeded")
    response = await gateway.client.get(f"/v1/jobs/{job['id']}/events", headers=gateway.auth())
    assert [name for name, _ in parse_sse(response.text)] == ["state", "completed"]


async def test_events_of_a_cancelled_job_end_with_cancelled(gateway: Gateway) -> None:
    gateway.engine.render = False
    job = (
        await gateway.client.post("/v1/jobs", json={"prompt": "a"}, headers=gateway.auth())
    ).json()

    async def cancel_soon() -> None:
        await asyncio.sleep(0.1)
        await gateway.client.delete(f"/v1/jobs/{job['id']}", headers=gateway.auth())

    canceller = asyncio.create_task(cancel_soon())
    response = await gateway.client.get(f"/v1/jobs/{job['id']}/events", headers=gateway.auth())
    await canceller
    assert [name for name, _ in parse_sse(response.text)] == ["state", "cancelled"]
