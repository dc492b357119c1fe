"""Webhooks at the gateway: a webhook URL that is wrong on its face is a 400 naming
``webhook_url`` (no job is made); the account reads and rotates its own signing secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from daguerre.config import Settings
from daguerre.gateway.app import create_app
from daguerre.store import open_store
from tests.support.engine import FakeEngine
from tests.unit.gateway.conftest import Gateway


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "https://",
        "http:///hook",
        "ftp://example.com/hook",
        "http://example.com:0/hook",
        "http://127.0.0.1:8000/admin",
        "http://localhost/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://0177.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
    ],
)
async def test_a_webhook_url_that_cannot_be_called_is_a_400(gateway: Gateway, url: str) -> None:
    body = {"prompt": "a", "webhook_url": url, "id": "hooked"}
    answer = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "webhook_url" and error["code"]
    assert "webhook_url" in error["message"]
    missing = await gateway.client.get("/v1/jobs/hooked", headers=gateway.auth())
    assert missing.status_code == 404


async def test_a_public_webhook_needs_no_server_secret(gateway: Gateway) -> None:
    assert gateway.settings.webhook_secret is None
    body = {"prompt": "a", "webhook_url": "https://hooks.example.com/in?token=x"}
    answer = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert answer.status_code == 202, answer.text


@pytest.fixture
async def allowing(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings(data_dir=tmp_path, webhook_allow=["127.0.0.1", "hooks.internal"])
    store = open_store(settings)
    accounts = store.accounts
    key = accounts.create_api_key(accounts.create_account("alice", "pro", "api").id)
    app = create_app(settings, workflows=FakeEngine(store), store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield Gateway(client, store, FakeEngine(store), settings, key, key)


async def test_the_operators_allow_list_lets_internal_destinations_through(
    allowing: Gateway,
) -> None:
    for url in ("http://127.0.0.1:9000/hook", "http://hooks.internal/hook"):
        body = {"prompt": "a", "webhook_url": url}
        answer = await allowing.client.post("/v1/jobs", json=body, headers=allowing.auth())
        assert answer.status_code == 202, answer.text
    body = {"prompt": "a", "webhook_url": "http://10.0.0.1/hook"}
    refused = await allowing.client.post("/v1/jobs", json=body, headers=allowing.auth())
    assert refused.status_code == 400


async def test_each_account_reads_and_rotates_its_own_secret(gateway: Gateway) -> None:
    first = await gateway.client.get("/v1/webhooks/secret", headers=gateway.auth())
    assert first.status_code == 200, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and first.json()["previous_secret_expires_at"] is None
    again = await gateway.client.get("/v1/webhooks/secret", headers=gateway.auth())
    assert again.json()["secret"] == secret  # made once, on first need
    other = await gateway.client.get("/v1/webhooks/secret", headers=gateway.auth(gateway.other_key))
    assert other.json()["secret"] != secret

    rotated = await gateway.client.post("/v1/webhooks/secret/rotate", headers=gateway.auth())
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["secret"] != secret and new["secret"].startswith("whsec_")
    grace = gateway.settings.webhook_secret_grace_s
    assert new["previous_secret_expires_at"] == pytest.approx(new["created_at"] + grace, abs=1)
    after = await gateway.client.get("/v1/webhooks/secret", headers=gateway.auth())
    assert after.json()["secret"] == new["secret"]
    still = await gateway.client.get("/v1/webhooks/secret", headers=gateway.auth(gateway.other_key))
    assert still.json()["secret"] == other.json()["secret"]


async def test_the_secret_needs_a_key(gateway: Gateway) -> None:
    assert (await gateway.client.get("/v1/webhooks/secret")).status_code == 401
    assert (await gateway.client.post("/v1/webhooks/secret/rotate")).status_code == 401
