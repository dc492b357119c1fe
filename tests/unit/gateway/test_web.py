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


async def test_every_referenced_asset_is_served(gateway: Gateway) -> None:
    html = (STATIC / "index.html").read_text()
    app_js = (STATIC / "app.js").read_text()
    referenced = set(re.findall(r'"/web/([\w.-]+)"', html))
    referenced |= set(re.findall(r'from "\./([\w.-]+)"', app_js))
    assert referenced == {"app.js", "api.js", "style.css"}
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
