"""The chat page's assets: served by the gateway at / and /web/<file>, from the package."""

from __future__ import annotations

import re

from daguerre.web import ASSETS, STATIC
from tests.unit.gateway.conftest import Gateway


async def test_index_is_served_without_a_key(gateway: Gateway) -> None:
    page = await gateway.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/web/app.js">' in page.text


async def test_the_operator_page_is_served_without_a_key_under_the_same_csp(
    gateway: Gateway,
) -> None:
    page = await gateway.client.get("/ops")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    chat_page = await gateway.client.get("/")
    csp = "content-security-policy"
    assert page.headers[csp] == chat_page.headers[csp]
    assert '<script type="module" src="/web/ops.js">' in page.text
    assert (await gateway.client.get("/web/ops.html")).status_code == 404  # only at /ops


def imported(name: str) -> set[str]:
    """The modules a script imports (``from "./x.js"``), and theirs, and so on."""
    found: set[str] = set()
    todo = [name]
    while todo:
        source = (STATIC / todo.pop()).read_text()
        for module in re.findall(r'from "\./([\w.-]+)"', source):
            if module not in found:
                found.add(module)
                todo.append(module)
    return found


async def test_every_referenced_asset_is_served(gateway: Gateway) -> None:
    html = (STATIC / "index.html").read_text()
    referenced = set(re.findall(r'"/web/([\w.-]+)"', html))
    referenced |= imported("app.js")
    modules = {"app.js", "api.js", "session.js", "sidebar.js", "thread.js", "turn.js"}
    modules |= {"follow.js", "gallery.js", "cooldown.js", "ui.js"}
    assert referenced == modules | {"style.css"}
    ops = (STATIC / "ops.html").read_text()
    referenced |= set(re.findall(r'"/web/([\w.-]+)"', ops)) | imported("ops.js")
    # nothing shipped that a page (the chat page, the operator page) does not load
    assert set(ASSETS) == referenced
    for name in referenced:
        answer = await gateway.client.get(f"/web/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["x-content-type-options"] == "nosniff"
    js = await gateway.client.get("/web/app.js")
    assert js.headers["content-type"].startswith("text/javascript")


async def test_unknown_or_traversing_names_are_404(gateway: Gateway) -> None:
    for path in ("/web/nope.js", "/web/..%2F__init__.py", "/web/index.html", "/web/"):
        answer = await gateway.client.get(path)
        assert answer.status_code == 404, path
    assert "__init__.py" not in ASSETS


def test_every_script_is_a_small_module() -> None:
    """Issue 15's size rule, for the page's scripts too: each one idea, <= 400 lines."""
    for script in STATIC.glob("*.js"):
        assert len(script.read_text().splitlines()) <= 400, script.name


def test_the_scripts_import_one_another_without_cycles() -> None:
    """Each module owns its state; a cycle would make two of them one (docs/web.md)."""
    for script in STATIC.glob("*.js"):
        assert script.name not in imported(script.name), script.name
