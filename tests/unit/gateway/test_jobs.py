"""The native job API: submit (idempotently), look, cancel, and follow events."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from daguerre.domain import JobSpec, default_seed
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


async def test_reused_id_conflicts_within_an_account_only(gateway: Gateway) -> None:
    body = {"prompt": "one", "size": "64x64", "id": "taken"}
    assert (await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())).is_success
    changed = {**body, "prompt": "two"}
    mine = await gateway.client.post("/v1/jobs", json=changed, headers=gateway.auth())
    assert mine.status_code == 409 and mine.json()["error"]["param"] == "id"
    assert "'taken'" in mine.json()["error"]["message"]


async def test_client_ids_are_per_account(gateway: Gateway) -> None:
    """Two accounts may use the same id: two jobs, and neither learns of the other's."""
    gateway.engine.render = False
    alice, bob = gateway.auth(), gateway.auth(gateway.other_key)
    body = {"prompt": "mine", "size": "64x64", "id": "shared-id"}
    first = await gateway.client.post("/v1/jobs", json=body, headers=alice)
    theirs = {**body, "prompt": "a different request"}
    second = await gateway.client.post("/v1/jobs", json=theirs, headers=bob)
    assert first.status_code == second.status_code == 202, second.text
    assert first.json()["id"] == second.json()["id"] == "shared-id"
    assert first.json()["events_url"].endswith("/v1/jobs/shared-id/events")
    # Two rows and two workflows, neither named by the client's id alone.
    rows = {job_id for job_id, *_ in gateway.engine.submitted}
    assert len(rows) == 2 and "shared-id" not in rows
    # Each account finds its own by the shared id, events and cancel included.
    for auth, prompt in ((alice, "mine"), (bob, "a different request")):
        got = await gateway.client.get("/v1/jobs/shared-id", headers=auth)
        assert got.status_code == 200 and got.json()["prompt"] == prompt
    cancelled = await gateway.client.delete("/v1/jobs/shared-id", headers=bob)
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["id"] == "shared-id"
    events = await gateway.client.get("/v1/jobs/shared-id/events", headers=bob)
    (kind, last), *_ = reversed(parse_sse(events.text))
    assert kind == "cancelled" and last["id"] == "shared-id"
    assert last["prompt"] == "a different request"
    mine = await gateway.client.get("/v1/jobs/shared-id", headers=alice)
    assert mine.json()["status"] == "queued"
    # The row id is no second name for a job its owner named.
    (row_id,) = [
        r for r, j in gateway.store.jobs.get_many(list(rows)).items() if j.spec.prompt == "mine"
    ]
    assert (await gateway.client.get(f"/v1/jobs/{row_id}", headers=alice)).status_code == 404


async def test_rows_from_before_per_account_ids_are_still_found(gateway: Gateway) -> None:
    """A job recorded when the client's id was the row's id (no client_id column)."""
    gateway.engine.render = False
    made = await gateway.client.post("/v1/jobs", json={"prompt": "old"}, headers=gateway.auth())
    made_job = gateway.store.jobs.get(made.json()["id"])
    assert made_job is not None
    gateway.store.jobs.create(
        "legacy-id",
        made_job.account_id,
        "api",
        JobSpec("old", "builtin", width=64, height=64, seed=default_seed("legacy-id")),
    )
    got = await gateway.client.get("/v1/jobs/legacy-id", headers=gateway.auth())
    assert got.status_code == 200 and got.json()["id"] == "legacy-id"
    again = await gateway.client.post(
        "/v1/jobs",
        json={"prompt": "old", "size": "64x64", "id": "legacy-id"},
        headers=gateway.auth(),
    )
    assert again.status_code == 202 and again.json()["id"] == "legacy-id"
    assert len(gateway.store.jobs.get_many(["legacy-id"])) == 1
    other = await gateway.client.get("/v1/jobs/legacy-id", headers=gateway.auth(gateway.other_key))
    assert other.status_code == 404


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
