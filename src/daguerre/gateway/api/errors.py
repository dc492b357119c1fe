"""Errors in OpenAI's shape, ``{"error": {message, type, param, code}}``, for every
failure the gateway can answer: bad input is a 400 that names the field, never a 422
or a 500, so the official clients raise their usual exceptions with a useful message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daguerre.gateway.api import route_table
from daguerre.gateway.api.security_headers import DEFAULTS as SECURITY_HEADERS
from daguerre.store.blobs import BlobStoreUnavailable

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(
            self.status,
            self.message,
            param=self.param,
            code=self.code,
            type=self.type,
            headers=self.headers,
        )


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    code = code or default_code(status)
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


# The code of an error raised without one (by the framework, or by our own code that
# had nothing more precise to say): clients switch on ``code``, so it is never null.
_STATUS_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_value",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "unavailable",
}


def default_code(status: int) -> str:
    return _STATUS_CODES.get(status, "server_error" if status >= 500 else "invalid_request")


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(message: str) -> APIError:
    return APIError(404, message, code="not_found")


def retry_later(message: str, code: str, retry_after_s: int = 5) -> APIError:
    """A 503: something the service needs is down or slow, and the client's request is
    fine and worth repeating after ``retry_after_s`` (sent as Retry-After)."""
    return APIError(
        503, message, type="server_error", code=code, headers={"Retry-After": str(retry_after_s)}
    )


def engine_unavailable(retry: str = "retry") -> APIError:
    """The 503 for a render engine (Temporal) that cannot be reached (``retry``: what to
    repeat)."""
    return retry_later(
        f"The render engine is unavailable; please {retry} shortly.", "engine_unavailable"
    )


class BodyTooLarge(Exception):
    pass


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _validation_message(error: dict[str, Any]) -> tuple[str, str | None, str]:
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    field = _field(loc)
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "invalid JSON")
        return f"The request body is not valid JSON ({reason}).", None, "invalid_json"
    if loc == ("body",) or field is None:
        if kind == "missing":
            return "The request needs a JSON body.", None, "missing_body"
        return "The request body must be a JSON object.", None, "invalid_json"
    if kind == "missing":
        return f"Missing required parameter: '{field}'.", field, "missing_required_parameter"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    got = error.get("input")
    shown = ""
    if isinstance(got, int | float | bool) or (isinstance(got, str) and len(got) <= 40):
        shown = f" (got {got!r})"
    return f"Invalid value for '{field}': {message}{shown}.", field, "invalid_value"


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return exc.response()


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    message, param, code = (
        _validation_message(errors[0]) if errors else ("Invalid request.", None, "invalid_value")
    )
    return error_response(400, message, param=param, code=code)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        return error_response(404, message, code="unknown_url")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return error_response(405, message, code="method_not_allowed", headers=headers)
    code = None
    if exc.status_code == 400:
        # The framework's own 400s: a body it could not parse (JSON too deep, a broken
        # multipart form, a missing boundary).
        code = "invalid_body"
    return error_response(exc.status_code, str(exc.detail), code=code, headers=headers or None)


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route serves at this path: Starlette's own Allow names only
    those of the first route that matched the path, and a path such as
    /v1/jobs/{id} has several (GET and DELETE)."""
    methods: set[str] = set()
    for match in route_table.matching(app, scope.get("path", "")):
        methods |= match.methods
    return sorted(methods)


async def _on_body_too_large(_: Request, exc: Exception) -> JSONResponse:
    return error_response(413, str(exc), code="request_too_large")


async def _on_blob_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The detail (endpoint, bucket, what to fix) is the operator's; the client only
    # needs to know that the request was fine and is worth repeating.
    log.warning("blob store unavailable on %s %s: %s", request.method, request.url.path, exc)
    message = "Image storage is unavailable; please retry shortly."
    return retry_later(message, "storage_unavailable").response()


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    # Answered by Starlette's outermost middleware, past SecurityHeadersMiddleware:
    # the headers come from here.
    return error_response(
        500,
        "The server had an error while processing your request.",
        type="server_error",
        code="server_error",
        headers=dict(SECURITY_HEADERS),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(BodyTooLarge, _on_body_too_large)
    app.add_exception_handler(BlobStoreUnavailable, _on_blob_store_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` before anything parses them.
    ``path_limits`` gives some paths their own limit (image uploads are larger)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        message = f"The request body is larger than the limit of {limit} bytes."
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(413, message, code="request_too_large")(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(message)
            return msg

        await self.app(scope, counted, send)
