"""A job's webhook: POSTed once the job is final, signed with HMAC, by a real worker
through the real Temporal server (a deferred client's way to learn of completion)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from temporalio.client import Client

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.domain import JobSpec
from daguerre.engine.client import TemporalEngine
from daguerre.store import open_store
from daguerre.workers.webhooks import SIGNATURE_HEADER, verify
from daguerre.workers.worker import pool_workers
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_terminal
from tests.support.stack import StackConfig, free_port

SECRET = "webhook-secret"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            calls["n"] += 1
            # The first delivery fails: the activity must retry it.
            if calls["n"] == 1:
                self.send_response(503)
            else:
                got.append((dict(self.headers), body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/hook", got
    server.shutdown()


async def test_a_final_job_calls_its_signed_webhook(
    tmp_path: Path,
    temporal_address: str,
    temporal_client: Client,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, got = receiver
    values = {"webhook_secret": SECRET, "retry_initial_interval_s": 0.1}
    settings = StackConfig(tmp_path, unique_tag(), temporal_address, values=values).settings()
    store = open_store(settings)
    account = store.accounts.create_account("a", "free", "api")
    spec = JobSpec(prompt="hook", model="fake", width=64, height=64, steps=2)
    store.jobs.create("job-hook", account.id, "api", spec, webhook_url=url)
    try:
        async with pool_workers(settings, "api", temporal_client):
            engine = TemporalEngine(settings, temporal_client)
            await engine.submit("job-hook", spec, "api", 3, account.id, webhook=True)
            job = await wait_terminal(store, "job-hook")
            for _ in range(200):
                if got:
                    break
                await asyncio.sleep(0.05)
    finally:
        store.close()
    assert job.status.value == "succeeded"
    assert len(got) == 1
    headers, body = got[0]
    assert verify(SECRET, headers[SIGNATURE_HEADER], body)
    assert not verify("another secret", headers[SIGNATURE_HEADER], body)
    payload = json.loads(body)
    assert payload["type"] == "job.succeeded"
    assert payload["job"]["id"] == "job-hook" and payload["job"]["image_ids"]
