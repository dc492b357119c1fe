"""Security headers on every response, errors and 404s included.

The chat page shares its origin with the API and keeps the API key in localStorage,
so nothing this origin serves may run a script the page did not ship: every response
gets a Content-Security-Policy. API answers (JSON, images, event streams, errors) are
never meant to be rendered as a page, so theirs allows nothing at all; the chat page
(routes/web.py) and the API docs (docs.py) set their own, and keep it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# For everything that is not a page: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DEFAULTS = {
    "Content-Security-Policy": API_CSP,
    # No guessing a JSON or image answer into HTML.
    "X-Content-Type-Options": "nosniff",
    # Signed image URLs are credentials: never leak them in a Referer.
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    """Adds DEFAULTS to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULTS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
