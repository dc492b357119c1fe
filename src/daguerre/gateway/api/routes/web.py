"""The chat page, served by the gateway: ``GET /`` is the page, ``GET /ops`` the operator
page, and ``GET /web/<file>`` their scripts and styles (the files themselves live in the
``web`` package, assets only).

The API key lives in the browser (localStorage) and is sent as a Bearer header by the
page's own ``fetch`` calls, never in a URL the server sees. The page gets its own CSP,
looser than the API's (security_headers.py keeps it): it loads its own scripts, styles
and images, and nothing from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from daguerre.gateway.api.errors import APIError
from daguerre.web import ASSETS, INDEX, MEDIA_TYPES, OPS

# The page loads nothing from elsewhere; images are same-origin URLs or data: previews.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def index() -> Response:
    return _file(INDEX)


@router.get("/ops")
async def operator_page() -> Response:
    """The operator page: open to load, like the chat page; every figure it shows and
    every change it makes goes through the admin API, with the admin key."""
    return _file(OPS)


@router.get("/web/{name}")
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise APIError(404, f"Unknown asset {name!r}.", code="unknown_url")
    return _file(path)
