"""Security headers on every response, errors and 404s included.

The chat page shares its origin with the API and keeps the API key in localStorage,
so nothing this origin serves may run a script the page did not ship: every response
gets a Content-Security-Policy. API answers (JSON, images, event streams, errors) are
never meant to be rendered as a page, so theirs allows nothing at all; the chat page
(routes/web.py) and the API docs (docs.py) set their own, and keep it.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Scope

from daguerre.gateway.api.missing_headers import MissingHeadersMiddleware

# For everything that is not a page: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DEFAULTS = {
    "Content-Security-Policy": API_CSP,
    # No guessing a JSON or image answer into HTML.
    "X-Content-Type-Options": "nosniff",
    # Signed image URLs are credentials: never leak them in a Referer.
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware(MissingHeadersMiddleware):
    """Adds DEFAULTS to every HTTP response that does not set them itself."""

    def headers(self, scope: Scope) -> Mapping[str, str]:
        return DEFAULTS
