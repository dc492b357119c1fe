"""/openapi.json that says what the API really answers.

FastAPI documents a 422 on every operation with parameters, which this gateway never
sends (errors.py turns validation errors into OpenAI's 400), and none of the errors it
does send. ``install_openapi`` replaces the generated document with one that drops the
422 and lists, with the OpenAI error schema, the errors each operation can answer.

Which errors apply is derived from what an operation is (under /v1 or /admin: 400 and
401 and 403; a path parameter: 404; a body: 413), so new routes are covered, plus a
table for the few that depend on what the operation does (it queues work: 409, 429,
503). A route may also declare an error itself (``responses={404: {"description":
...}}``); it gets the error schema here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from daguerre.gateway.api.schemas import ErrorResponse

ERROR_SCHEMA = "ErrorResponse"  # the name FastAPI gives the model, where a route uses it
_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}

DESCRIPTIONS = {
    "400": "Bad request: a field is missing or invalid (``param`` names it).",
    "401": "No API key, or one that is unknown, revoked or expired.",
    "403": "The key may not do this (scope), or the signed link is invalid or expired.",
    "404": "No such resource for this key (another account's looks the same).",
    "409": "Conflict with the resource's state, or an id used for another request.",
    "413": "The request body is over the size limit.",
    "429": "Rate limit or capacity: retry after ``Retry-After`` seconds.",
    "503": "The render engine or image storage is unavailable, or the wait timed out; retry later.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}

# Errors that depend on what the operation does, by (method, path).
_SUBMITS = ("409", "429", "503")  # queues a job: id conflicts, limits, the engine
EXTRA: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/v1/jobs"): _SUBMITS,
    ("post", "/v1/images/generations"): _SUBMITS,
    ("post", "/v1/images/edits"): _SUBMITS,
    ("post", "/v1/conversations/{conversation_id}/turns"): _SUBMITS,
    ("delete", "/v1/jobs/{job_id}"): ("409", "503"),
    ("get", "/metrics"): ("401", "403"),
    ("get", "/readyz"): ("503",),
}
_AUTHENTICATED = ("/v1/", "/admin/")


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    """The error statuses ``operation`` (at ``method`` ``path``) can answer."""
    statuses: set[str] = set(EXTRA.get((method, path), ()))
    if path.startswith(_AUTHENTICATED):
        statuses |= {"400", "401", "403"}
    if "{" in path:
        statuses |= {"400", "404"}
    if "requestBody" in operation:
        statuses |= {"400", "413"}
    if any(p.get("in") in ("query", "header") for p in operation.get("parameters", [])):
        statuses.add("400")
    return statuses


def _error_response(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, "Error."),
        "content": {"application/json": {"schema": _REF}},
    }
    if status in ("429", "503"):
        response["headers"] = _RETRY_AFTER
    return response


def honest(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's) without the 422s, with the real errors listed."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            responses.pop("422", None)
            for status in sorted(error_statuses(method, path, operation)):
                responses.setdefault(status, _error_response(status))
            for status, response in responses.items():
                # An error a route declared itself (``responses={404: {...}}``) gets the
                # error schema too, unless it gave one.
                if status.isdigit() and int(status) >= 400 and "content" not in response:
                    response.update({**_error_response(status), **response})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = error
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve ``honest`` /openapi.json (built once, on first request, like FastAPI's)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                webhooks=app.webhooks.routes,
            )
            for operations in document.get("webhooks", {}).values():
                for operation in operations.values():
                    # The receiver answers these, not Daguerre: no 422 of ours.
                    operation["responses"] = {"200": {"description": "Any 2xx acknowledges."}}
            app.openapi_schema = honest(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
