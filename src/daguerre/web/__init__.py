"""The chat page's assets, and the operator page's: plain ES modules, stylesheets and two
HTML pages, no build step.

This package is assets only, and imports nothing of ours: the gateway serves them
(gateway/api/routes/web.py). It says where they are and what each one is, and ``ASSETS``
lists the files a request may name: only those shipped in ``static/``, by name, so no
path from a request reaches the disk.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
INDEX = STATIC / "index.html"
OPS = STATIC / "ops.html"  # the operator page, behind the admin key


def _assets() -> dict[str, Path]:
    # The pages themselves are served at / and /ops, never as assets.
    pages = {INDEX, OPS}
    return {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES and p not in pages}


ASSETS = _assets()
