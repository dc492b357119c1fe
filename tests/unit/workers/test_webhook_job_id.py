"""A webhook names the job by the id its owner knows: their own, when they chose one
(the row's id is derived from it and the account, see gateway/services/jobs.py new_job_id)."""

from __future__ import annotations

import json
from pathlib import Path

from daguerre.config import Settings
from daguerre.domain import JobStatus
from daguerre.engine.contracts import NotifyInput
from daguerre.gateway.app import create_app
from daguerre.store import open_store
from daguerre.webhook_event import WebhookEvent
from tests.unit.workers.test_webhooks import SPEC, Recorder, activities


async def test_the_payload_carries_the_clients_own_id(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings)
    try:
        account = store.accounts.create_account("a", "pro", "api")
        url = "https://hooks.example/x"
        store.jobs.create("job_rowid", account.id, "api", SPEC, webhook_url=url, client_id="o-42")
        store.jobs.finish("job_rowid", JobStatus.FAILED, "it failed", "render_failed")
        recorder = Recorder()
        await activities(store, settings, recorder).notify(NotifyInput("job_rowid"))
    finally:
        store.close()
    (request,) = recorder.requests
    assert json.loads(request.content)["job"]["id"] == "o-42"


async def test_the_payload_is_the_documented_webhook_event(tmp_path: Path) -> None:
    """What the worker sends parses as the WebhookEvent that /openapi.json publishes."""
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings)
    try:
        account = store.accounts.create_account("a", "pro", "api")
        store.jobs.create("job_x", account.id, "api", SPEC, webhook_url="https://hooks.example/x")
        store.jobs.finish("job_x", JobStatus.CANCELLED, "cancelled by its owner", "cancelled")
        recorder = Recorder()
        await activities(store, settings, recorder).notify(NotifyInput("job_x"))
    finally:
        store.close()
    (request,) = recorder.requests
    event = WebhookEvent.model_validate_json(request.content)
    assert (event.type, event.job.id, event.job.error_code) == (
        "job.cancelled",
        "job_x",
        "cancelled",
    )
    document = create_app(settings).openapi()
    body = document["webhooks"]["job.final"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/WebhookEvent")
