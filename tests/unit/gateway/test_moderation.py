"""Prompt moderation before admission: the term list with per-tier strictness, OpenAI's
``moderation: low``, an external classifier over real HTTP, the ``moderation_blocked``
refusal, its metric and its audit record."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daguerre.config import Settings
from tests.unit.gateway.conftest import Gateway, running_gateway
from tests.unit.gateway.test_edits import EDITS

GENERATE = "/v1/images/generations"
ADMIN = "moderation-admin"


def settings(tmp_path: Path, **values: Any) -> Settings:
    access = {
        "tiers": {
            "free": {"priority": 3, "moderation": "strict"},
            "pro": {"priority": 1},  # standard: `low` relaxes it
        },
        "features": {"generate": {"percent": 100}, "edit": {"percent": 100}},
    }
    return Settings(data_dir=tmp_path, admin_key=ADMIN, access=access, **values)


async def generate(gateway: Gateway, prompt: str, key: str | None = None, **fields: Any) -> Any:
    body = {"prompt": prompt, "size": "64x64", **fields}
    return await gateway.client.post(GENERATE, json=body, headers=gateway.auth(key))


def assert_blocked(response: Any) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "moderation_blocked"
    assert (error["type"], error["param"]) == ("image_generation_user_error", "prompt")


async def refusals(gateway: Gateway, account: str | None = None) -> list[dict[str, Any]]:
    query = f"?account={account}" if account else ""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = await gateway.client.get(f"/admin/moderation{query}", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_a_severe_term_is_refused_counted_and_recorded(tmp_path: Path) -> None:
    async with running_gateway(settings(tmp_path)) as gateway:
        prompt = "a red circle, a Snuff   Film still"
        for moderation in ("auto", "low"):  # low never relaxes a severe term
            assert_blocked(await generate(gateway, prompt, moderation=moderation))
        assert gateway.engine.submitted == []
        recorded = await refusals(gateway)
        assert [r["prompt"] for r in recorded] == [prompt, prompt]
        assert recorded[0]["reason"] == "severe term 'snuff film'"
        assert recorded[0]["policy"] == "terms"
        alice = gateway.store.accounts.find_account("alice")
        assert alice is not None and {r["account_id"] for r in recorded} == {alice.id}
        metrics = (await gateway.client.get("/metrics")).text
        assert 'daguerre_moderation_refusals_total{policy="terms",tier="pro"} 2.0' in metrics


async def test_low_relaxes_sensitive_terms_only_where_the_tier_allows(tmp_path: Path) -> None:
    async with running_gateway(settings(tmp_path)) as gateway:
        prompt = "a NAKED blue square on the left"
        assert_blocked(await generate(gateway, prompt))
        assert (await generate(gateway, prompt, moderation="low")).status_code == 200  # pro
        # bob is on the strict free tier: low changes nothing there.
        assert_blocked(await generate(gateway, prompt, gateway.other_key, moderation="low"))
        bob = gateway.store.accounts.find_account("bob")
        assert bob is not None and len(await refusals(gateway, bob.id)) == 1


@pytest.mark.parametrize(
    "prompt",
    ["a large red circle in the center, on a white background", "a denuded hill", "nudes"],
)
async def test_whole_words_only(tmp_path: Path, prompt: str) -> None:
    async with running_gateway(settings(tmp_path)) as gateway:
        assert (await generate(gateway, prompt)).status_code == 200


async def test_edits_are_moderated_before_their_uploads_are_read(tmp_path: Path) -> None:
    async with running_gateway(settings(tmp_path)) as gateway:
        body = {"prompt": "make it gory", "images": [{"image_url": "data:image/png;base64,AA=="}]}
        assert_blocked(await gateway.client.post(EDITS, json=body, headers=gateway.auth()))
        assert gateway.engine.submitted == []


async def test_a_terms_file_replaces_the_list(tmp_path: Path) -> None:
    terms = tmp_path / "terms.json"
    terms.write_text(json.dumps({"severe": ["purple triangle"], "sensitive": []}))
    async with running_gateway(settings(tmp_path, moderation_terms_file=terms)) as gateway:
        assert_blocked(await generate(gateway, "a small Purple triangle at the top"))
        assert (await generate(gateway, "naked")).status_code == 200  # not on this list


class Classifier:
    """A real HTTP classifier in OpenAI's moderation shape: "violence" and "gore" are
    flagged violence/graphic, "rude" harassment; "down" answers 500."""

    def __init__(self) -> None:
        classifier = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                text = json.loads(self.rfile.read(length))["input"]
                classifier.seen.append((text, self.headers.get("Authorization")))
                if "down" in text:
                    self.send_response(500)
                    self.end_headers()
                    return
                categories = {
                    "violence/graphic": "gore" in text,
                    "harassment": "rude" in text,
                }
                result = {"flagged": any(categories.values()), "categories": categories}
                body = json.dumps({"results": [result]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.seen: list[tuple[str, str | None]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/moderations"


@pytest.fixture
def classifier() -> Iterator[Classifier]:
    running = Classifier()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


async def test_an_external_classifier_decides(tmp_path: Path, classifier: Classifier) -> None:
    values = {
        "moderation_policy": "http",
        "moderation_url": classifier.url,
        "moderation_api_key": "classifier-key",
    }
    async with running_gateway(settings(tmp_path, **values)) as gateway:
        assert (await generate(gateway, "a red circle")).status_code == 200
        assert_blocked(await generate(gateway, "a rude circle"))
        # Under an allowed `low`, only the severe categories are refused.
        assert (await generate(gateway, "a rude circle", moderation="low")).status_code == 200
        assert_blocked(await generate(gateway, "gore everywhere", moderation="low"))
        assert classifier.seen[0] == ("a red circle", "Bearer classifier-key")
        (last, *_) = await refusals(gateway)
        assert (last["policy"], last["reason"]) == ("http", "categories: violence/graphic")
        # A classifier that cannot answer: availability first, by default.
        assert (await generate(gateway, "down we go")).status_code == 200


async def test_a_classifier_outage_can_refuse_instead(
    tmp_path: Path, classifier: Classifier
) -> None:
    values = {
        "moderation_policy": "http",
        "moderation_url": classifier.url,
        "moderation_on_error": "refuse",
    }
    async with running_gateway(settings(tmp_path, **values)) as gateway:
        response = await generate(gateway, "down we go")
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "moderation_unavailable"
        assert gateway.engine.submitted == []


def test_the_http_policy_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="moderation_url"):
        Settings(data_dir=tmp_path, moderation_policy="http")
