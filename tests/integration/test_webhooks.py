"""A job's webhook: POSTed once the job is final, signed with HMAC, by a real worker
through the real Temporal server (a deferred client's way to learn of completion)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from temporalio.client import Client

import tests.support.fake_model  # noqa: F401  (registers the "fake" backend)
from daguerre.domain import JobSpec
from daguerre.engine.client import TemporalWorkflowClient
from daguerre.redact import install_log_redaction, uninstall_log_redaction
from daguerre.store import open_store
from daguerre.workers.webhooks import SIGNATURE_HEADER, verify
from daguerre.workers.worker import pool_workers
from tests.integration.conftest import unique_tag
from tests.integration.helpers import wait_terminal
from tests.support.stack import StackConfig, free_port
from tests.support.webhooks import silent_listener

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
                got.append(({**self.headers, ":path": self.path}, body))
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
    values = {
        "webhook_secret": SECRET,
        "retry_initial_interval_s": 0.1,
        "webhook_allow": ["127.0.0.1"],  # the receiver is on loopback
    }
    settings = StackConfig(tmp_path, unique_tag(), temporal_address, values=values).settings()
    store = open_store(settings)
    account = store.accounts.create_account("a", "free", "api")
    spec = JobSpec(prompt="hook", model="fake", width=64, height=64, steps=2)
    store.jobs.create("job-hook", account.id, "api", spec, webhook_url=url)
    try:
        async with pool_workers(settings, "api", temporal_client):
            engine = TemporalWorkflowClient(settings, temporal_client)
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


@pytest.fixture
def hung() -> Iterator[tuple[int, list[socket.socket]]]:
    """A receiver that takes connections and never answers."""
    with silent_listener(64) as listening:
        yield listening


async def test_hung_webhooks_do_not_delay_another_accounts_job(
    tmp_path: Path,
    temporal_address: str,
    temporal_client: Client,
    hung: tuple[int, list[socket.socket]],
) -> None:
    """Eight webhooks that never answer hold delivery slots; another account's failed
    job is still marked failed (its bookkeeping activity) at once. Before deliveries had
    slots of their own, it waited 10-17 s behind them."""
    port, accepted = hung
    values = {"webhook_allow": ["127.0.0.1"], "retry_initial_interval_s": 0.1}
    settings = StackConfig(tmp_path, unique_tag(), temporal_address, values=values).settings()
    store = open_store(settings)
    slow = store.accounts.create_account("slow", "pro", "api")
    other = store.accounts.create_account("other", "pro", "api")
    spec = JobSpec(prompt="hook", model="fake", width=64, height=64, steps=1)
    failing = JobSpec(prompt="fail:input", model="fake", width=64, height=64, steps=1)
    loop = asyncio.get_running_loop()
    try:
        async with pool_workers(settings, "api", temporal_client):
            engine = TemporalWorkflowClient(settings, temporal_client)
            for i in range(8):
                url = f"http://127.0.0.1:{port}/hook/{i}"
                store.jobs.create(f"hung-{i}", slow.id, "api", spec, webhook_url=url)
                await engine.submit(f"hung-{i}", spec, "api", 3, slow.id, webhook=True)
            deadline = loop.time() + 30
            while len(accepted) < 4 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert len(accepted) >= 4, "the webhooks were not called"
            store.jobs.create("other-job", other.id, "api", failing)
            started = loop.time()
            await engine.submit("other-job", failing, "api", 3, other.id)
            job = await wait_terminal(store, "other-job", timeout_s=30)
            elapsed = loop.time() - started
    finally:
        store.close()
    assert job.status.value == "failed"
    # Well under the 10-17 s of the failure, with room for a slow CI machine.
    assert elapsed < 6.0, f"the other account's job took {elapsed:.1f} s to be marked failed"


async def test_the_worker_log_never_carries_a_webhooks_secrets(
    tmp_path: Path,
    temporal_address: str,
    temporal_client: Client,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A webhook URL with credentials and a token: the receiver gets both, the log (a
    failed first try, then the delivery) neither."""
    url, got = receiver
    secret_url = url.replace("http://", "http://hookuser:hunter2pass@") + "?token=SECRETTOKEN"
    values = {"retry_initial_interval_s": 0.1, "webhook_allow": ["127.0.0.1"]}
    settings = StackConfig(tmp_path, unique_tag(), temporal_address, values=values).settings()
    store = open_store(settings)
    account = store.accounts.create_account("a", "free", "api")
    spec = JobSpec(prompt="hook", model="fake", width=64, height=64, steps=2)
    store.jobs.create("job-secret-hook", account.id, "api", spec, webhook_url=secret_url)
    install_log_redaction()  # as `daguerre worker` does (commands/serve.py)
    try:
        with caplog.at_level(logging.DEBUG):
            async with pool_workers(settings, "api", temporal_client):
                engine = TemporalWorkflowClient(settings, temporal_client)
                await engine.submit("job-secret-hook", spec, "api", 3, account.id, webhook=True)
                await wait_terminal(store, "job-secret-hook")
                for _ in range(200):
                    if got:
                        break
                    await asyncio.sleep(0.05)
        own = store.accounts.webhook_secrets(account.id)
    finally:
        uninstall_log_redaction()
        store.close()
    assert len(got) == 1
    headers, body = got[0]
    assert headers[":path"] == "/hook?token=SECRETTOKEN"
    assert headers["Authorization"].startswith("Basic ")
    assert own is not None and verify(own.current, headers[SIGNATURE_HEADER], body)
    log = caplog.text
    assert "http://127.0.0.1:" in log  # the failed first try was logged
    for secret in ("hookuser", "hunter2pass", "SECRETTOKEN"):
        assert secret not in log, f"{secret} is in the worker's log"
