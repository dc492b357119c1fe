"""The chat page: static assets (plain ES modules, no build step) served by the gateway.

``GET /`` is the page; ``GET /web/<file>`` its scripts and styles. Only the files
shipped in ``static/`` are served, by name, so no path from a request reaches the disk.
The API key lives in the browser (localStorage) and is sent as a Bearer header by the
page's own ``fetch`` calls, never in a URL the server sees.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from daguerre.gateway.errors import APIError

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
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


def _assets() -> dict[str, Path]:
    return {
        p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES and p.name != "index.html"
    }


ASSETS = _assets()


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def index() -> Response:
    return _file(STATIC / "index.html")


@router.get("/web/{name}")
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise APIError(404, f"Unknown asset {name!r}.", code="unknown_url")
    return _file(path)
