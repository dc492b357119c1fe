"""Response headers added on the way out, unless the response set them itself: the one
mechanism behind the security headers and OpenAI's x-ratelimit-* headers."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class MissingHeadersMiddleware:
    """Adds ``headers(scope)`` to every HTTP response (streamed ones too) that does not
    already carry them. Subclasses say which."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def headers(self, scope: Scope) -> Mapping[str, str] | None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = self.headers(scope)
                if extra:
                    headers = MutableHeaders(scope=message)
                    for name, value in extra.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
