"""Same-origin hygiene: a CSP (and nosniff, no-referrer) on every response, and no
script from another origin: /docs and /redoc loaded Swagger UI and ReDoc from a CDN on
the chat page's origin, where the API key lives in localStorage."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from daguerre.config import Settings
from daguerre.gateway.api import docs
from daguerre.gateway.api.routes.web import CSP as CHAT_CSP
from daguerre.gateway.api.security_headers import API_CSP
from daguerre.gateway.app import create_app
from daguerre.store import open_store
from tests.support.engine import FakeEngine
from tests.unit.gateway.conftest import Gateway

# src= and href= in a page, and ES module imports: what a browser would load.
LOADS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\bfrom\s+["']([^"']+)["']""")


def assert_hardened(response: httpx.Response, csp: str = API_CSP) -> None:
    assert response.headers["content-security-policy"] == csp, response.request.url
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def assert_same_origin(text: str) -> None:
    for found in LOADS.findall(text):
        url = found[0] or found[1]
        assert url.startswith(("/", "./", "#", "data:")), url
        assert not url.startswith("//"), url


@pytest.fixture
async def with_docs(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    settings = Settings(data_dir=tmp_path, api_docs=True)
    store = open_store(settings)
    app = create_app(settings, workflows=FakeEngine(store), store=store)
    # raise_app_exceptions=False: see the 500 that a client would see.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client, app


async def test_every_kind_of_answer_has_the_headers(gateway: Gateway) -> None:
    client, auth = gateway.client, gateway.auth()
    assert_hardened(await client.get("/v1/models", headers=auth))  # JSON
    assert_hardened(await client.get("/v1/models"))  # 401
    assert_hardened(await client.get("/v1/nowhere", headers=auth))  # 404
    assert_hardened(await client.put("/v1/jobs", headers=auth))  # 405
    assert_hardened(await client.post("/v1/jobs", json={"prompt": ""}, headers=auth))  # 400
    assert_hardened(await client.get("/healthz"))
    assert_hardened(await client.get("/openapi.json"))
    made = await client.post(
        "/v1/images/generations",
        json={"prompt": "a", "size": "64x64", "response_format": "url"},
        headers=auth,
    )
    assert_hardened(made)
    image = await client.get(made.json()["data"][0]["url"])
    assert image.headers["content-type"] == "image/png"
    assert_hardened(image)
    job = await client.post("/v1/jobs", json={"prompt": "a", "size": "64x64"}, headers=auth)
    events = await client.get(f"/v1/jobs/{job.json()['id']}/events", headers=auth)
    assert events.headers["content-type"].startswith("text/event-stream")
    assert_hardened(events)


async def test_the_chat_page_keeps_its_own_csp(gateway: Gateway) -> None:
    page = await gateway.client.get("/")
    assert_hardened(page, CHAT_CSP)
    assert_same_origin(page.text)
    for name in ("app.js", "api.js", "style.css"):
        asset = await gateway.client.get(f"/web/{name}")
        assert_hardened(asset, CHAT_CSP)
        assert_same_origin(asset.text)


async def test_a_500_has_the_headers(with_docs: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = with_docs

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert_hardened(response)


async def test_docs_are_off_by_default(gateway: Gateway) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs/assets/swagger-ui.css"):
        response = await gateway.client.get(path)
        assert response.status_code == 404, path
        assert_hardened(response)
    assert (await gateway.client.get("/openapi.json")).status_code == 200


async def test_docs_load_only_this_origins_files(
    with_docs: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, _ = with_docs
    page = await client.get("/docs")
    assert page.status_code == 200
    assert_hardened(page, docs.CSP)
    assert "<script>" not in page.text  # no inline script: script-src 'self' holds
    assert_same_origin(page.text)
    loads = [a or b for a, b in LOADS.findall(page.text)]
    assert "/docs/assets/swagger-ui-bundle.js" in loads
    for url in loads:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert_hardened(asset, docs.CSP)
    init = await client.get("/docs/assets/init.js")
    assert "http" not in init.text
    assert "validatorUrl: null" in init.text
    assert (await client.get("/redoc")).status_code == 404
    for name in ("../core.py", "redoc.standalone.js", "%2e%2e%2fcore.py"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 404, name


def test_no_policy_lets_another_origin_in() -> None:
    for csp in (API_CSP, docs.CSP, CHAT_CSP):
        assert "http" not in csp
        assert "*" not in csp
        assert "'unsafe-inline'" not in csp
        assert "'unsafe-eval'" not in csp
        assert "frame-ancestors 'none'" in csp
