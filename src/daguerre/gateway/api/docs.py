"""Interactive API docs (Swagger UI) at /docs, when ``api_docs`` is on.

FastAPI's own /docs and /redoc load a floating Swagger UI / ReDoc from a CDN, with no
integrity check, on the origin of the chat page, which keeps the API key in
localStorage: whoever serves that script can read the key. These docs load nothing
from elsewhere: the assets come from the ``fastapi-offline`` wheel (pinned in
pyproject.toml), served from /docs/assets/, and the page has no inline script, so its
CSP allows scripts from this origin only. ReDoc is not served.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from daguerre.gateway.api.errors import APIError

VENDOR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
# This origin only; Swagger UI draws its icons as data: images. Checked in Chromium:
# the page renders and "Try it out" works with no CSP violation.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The page's one script of its own, served as a file: an inline one would need
# 'unsafe-inline' (or a hash kept in step with it) in script-src.
INIT_JS = """\
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,  // Swagger's public validator is another origin
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
});
"""
PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Daguerre API</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page() -> Response:
    return HTMLResponse(PAGE, headers={**HEADERS, "Cache-Control": "no-cache"})


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    headers = {**HEADERS, "Cache-Control": "public, max-age=86400"}
    if name == "init.js":
        return Response(INIT_JS, media_type="text/javascript; charset=utf-8", headers=headers)
    media_type = ASSETS.get(name)
    if media_type is None:  # only the files named above: no path from a request
        raise APIError(404, f"Unknown asset {name!r}.", code="unknown_url")
    return FileResponse(VENDOR / name, media_type=media_type, headers=headers)
