"""/docs (DAGUERRE_API_DOCS) in Chromium: Swagger UI renders under the page's strict
CSP, with no violation, loading nothing from another origin (before, it loaded a
floating Swagger UI from a CDN, on the origin where the chat page keeps the API key).

A gateway in a thread with the fake engine: no Temporal, no worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from daguerre.config import Settings
from daguerre.gateway.app import create_app
from daguerre.store import open_store
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.engine import FakeEngine
from tests.support.stack import free_port


@pytest.fixture
def docs_url(tmp_path: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path, api_docs=True)
    store = open_store(settings)
    app = create_app(settings, workflows=FakeEngine(store), store=store)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    store.close()


def test_swagger_ui_renders_under_its_csp_from_this_origin_only(docs_url: str) -> None:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = chromium.new_page()
        console: list[str] = []
        origins: set[str] = set()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.on("request", lambda r: origins.add(urlsplit(r.url).netloc))
        page.goto(f"{docs_url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "Daguerre" in page.inner_text(".swagger-ui .info .title")
        # Open an operation and run it: the response pane is highlighted by script.
        page.locator(".opblock-summary", has_text="/healthz").first.click()
        page.click("button.try-out__btn")
        page.click("button.execute")
        page.wait_for_selector(".live-responses-table", timeout=30_000)
        chromium.close()
    assert origins == {urlsplit(docs_url).netloc}
    assert console == []  # a CSP violation is logged as a console error
