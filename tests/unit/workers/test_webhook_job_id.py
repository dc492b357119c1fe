"""A webhook names the job by the id its owner knows: their own, when they chose one
(the row's id is derived from it and the account, see gateway/services/jobs.py new_job_id)."""

from __future__ import annotations

import json
from pathlib import Path

from daguerre.config import Settings
from daguerre.domain import JobStatus
from daguerre.engine.contracts import NotifyInput
from daguerre.store import open_store
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
