"""The chat page in a real browser: Debian's Chromium driven by Playwright, against a
full stack (real Temporal dev server, gateway and a chat-pool worker with the shipped
model) started for the session.

Renders are slowed to ``STEP_DELAY_S`` a step, so that a test can see partial previews
and reload the page while an image is still rendering.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from daguerre.store import Store, open_store
from tests.integration.conftest import e2e_model, temporal, temporal_address, unique_tag
from tests.support.stack import REPO, Proc, StackConfig, free_port, start_gateway, start_worker

# The integration tests' fixtures: one Temporal dev server, the model they render with.
__all__ = ["e2e_model", "temporal", "temporal_address"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# The screenshots of docs/web.md: rewritten there only when asked
# (DAGUERRE_SCREENSHOTS=1), so that a test run never changes the tree; otherwise they
# go to a temporary folder, and are still taken (a page that cannot be shot fails).
SCREENSHOTS = REPO / "docs" / "screenshots"
STEP_DELAY_S = 0.4  # the built-in model's 8 steps take about 3 s
TIMEOUT_MS = 30_000  # generous: two shared CPU cores, a real model, a real Temporal

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@dataclass
class WebStack:
    url: str
    config: StackConfig
    gateway: Proc
    worker: Proc
    store: Store

    def new_key(self, tier: str = "pro") -> str:
        """A fresh account (so each test starts with no conversations) on the chat pool."""
        account = self.store.accounts.create_account("browser", tier, "chat")
        return self.store.accounts.create_api_key(account.id)


@pytest.fixture(scope="session")
def web_stack(
    tmp_path_factory: pytest.TempPathFactory, temporal_address: str, e2e_model: str
) -> Iterator[WebStack]:
    data_dir = tmp_path_factory.mktemp("web")
    config = StackConfig(
        data_dir, unique_tag(), temporal_address, e2e_model, step_delay_s=STEP_DELAY_S
    )
    store = open_store(config.settings())
    worker = start_worker(config, "chat", data_dir)
    port = free_port()
    try:
        gateway = start_gateway(config, port, data_dir)
    except BaseException:
        worker.stop()
        raise
    yield WebStack(f"http://127.0.0.1:{port}", config, gateway, worker, store)
    gateway.stop()
    worker.stop()
    store.close()


@pytest.fixture(scope="module")
def browser(web_stack: WebStack) -> Iterator[Browser]:
    """Chromium, per module. Playwright's sync API keeps its own event loop marked as
    running while it is open, so it must start after the (async) Temporal fixture and
    close before any other module's async tests: hence the scope and the dependency."""
    if shutil.which(str(CHROMIUM)) is None:
        pytest.fail("Chromium is missing: apt-get install -y chromium (`make install` does)")
    with sync_playwright() as p:
        # launch() gives every run a fresh, temporary profile (user data dir).
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class Console:
    """Console errors and uncaught page errors; a test fails if any is unexpected."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Accept a console error the test provokes on purpose (Chromium logs every
        4xx answer to fetch() as ``Failed to load resource``)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a.search(e) for a in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def new_page(
    browser: Browser, console: Console, web_stack: WebStack
) -> Iterator[Callable[[], Page]]:
    """Opens pages in one fresh browser context (its own localStorage), watching the
    console of each. Fails the test on any unexpected console error."""
    context = browser.new_context(
        viewport={"width": 1200, "height": 820},
        base_url=web_stack.url,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(TIMEOUT_MS)

    def open_page() -> Page:
        page = context.new_page()
        page.on(
            "console",
            lambda msg: (
                console.errors.append(f"console: {msg.text}") if msg.type == "error" else None
            ),
        )
        page.on("pageerror", lambda err: console.errors.append(f"pageerror: {err}"))
        return page

    yield open_page
    context.close()
    assert console.unexpected() == [], "console errors in the page"


def shot(page: Page, name: str) -> None:
    """A screenshot for docs/web.md (the page as it is: this waits for nothing)."""
    folder = SCREENSHOTS if os.environ.get("DAGUERRE_SCREENSHOTS") == "1" else _scratch()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="daguerre-screenshots-"))
