"""An honest contract: /openapi.json lists the errors the API really sends (and not the
422 it never sends), the size pattern and the prompt bounds; every error has a code;
a 405 says which methods are allowed."""

from __future__ import annotations

from typing import Any

import pytest

from daguerre.gateway.api.errors import APIError
from daguerre.gateway.api.schemas import MAX_PROMPT_CHARS, SIZE_PATTERN
from tests.support.routes import http_routes
from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_errors import error_of

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


async def openapi(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


async def test_no_422_anywhere(gateway: Gateway) -> None:
    document = await openapi(gateway)
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], f"{method} {path}"
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


async def test_every_v1_and_admin_operation_lists_400_and_401_as_errors(
    gateway: Gateway,
) -> None:
    document = await openapi(gateway)
    checked = 0
    for method, path, operation in operations(document):
        if not path.startswith(("/v1/", "/admin/")):
            continue
        checked += 1
        responses = operation["responses"]
        for status in ("400", "401", "403"):
            assert status in responses, f"{method} {path} lacks {status}"
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
        if "{" in path:
            assert "404" in responses, f"{method} {path}"
        if "requestBody" in operation:
            assert "413" in responses, f"{method} {path}"
    assert checked >= 15


async def test_every_documented_error_has_the_error_schema(gateway: Gateway) -> None:
    for method, path, operation in operations(await openapi(gateway)):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (
                    method,
                    path,
                    status,
                )


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/jobs", {"409", "429", "503"}),
        ("post", "/v1/images/generations", {"409", "429", "503"}),
        ("post", "/v1/images/edits", {"409", "413", "429", "503"}),
        ("post", "/v1/conversations/{conversation_id}/turns", {"404", "429", "503"}),
        ("delete", "/v1/jobs/{job_id}", {"404", "409", "503"}),
        ("get", "/v1/images/files/{image_id}", {"401", "403", "404"}),
    ],
)
async def test_the_operations_own_errors_are_listed(
    gateway: Gateway, method: str, path: str, statuses: set[str]
) -> None:
    responses = (await openapi(gateway))["paths"][path][method]["responses"]
    assert statuses <= set(responses)
    for status in statuses & {"429", "503"}:
        assert "Retry-After" in responses[status]["headers"]


async def test_the_error_schema_has_a_code_that_is_never_null(gateway: Gateway) -> None:
    schemas = (await openapi(gateway))["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    detail = schemas["ErrorDetail"]
    assert set(detail["required"]) == {"message", "type", "code"}
    assert detail["properties"]["code"] == {
        "description": detail["properties"]["code"]["description"],
        "title": "Code",
        "type": "string",
    }


async def test_size_pattern_and_prompt_bounds_are_in_the_schema(gateway: Gateway) -> None:
    document = await openapi(gateway)
    schemas = document["components"]["schemas"]
    for name in ("JobCreate", "ImageGenerateCreate", "TurnCreate"):
        properties = schemas[name]["properties"]
        assert properties["size"]["pattern"] == SIZE_PATTERN, name
        assert properties["prompt"]["minLength"] == 1, name
        assert properties["prompt"]["maxLength"] == MAX_PROMPT_CHARS, name
    edit = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    form = edit["multipart/form-data"]["schema"]["properties"]
    assert form["size"]["pattern"] == SIZE_PATTERN
    assert form["prompt"]["maxLength"] == MAX_PROMPT_CHARS


async def test_405_has_allow_listing_every_method_of_the_path(gateway: Gateway) -> None:
    """Each path of the route table, asked with a method it does not serve."""
    routes = http_routes(gateway.client._transport.app)  # type: ignore[attr-defined]
    for route in routes:
        served = set(route.methods)
        path = route.fill({name: "x" for name in route.params})
        method = "PUT" if "PUT" not in served else "PATCH"
        if method in served:
            continue
        response = await gateway.client.request(method, path, headers=gateway.auth())
        error = error_of(response, 405)
        assert error["code"] == "method_not_allowed"
        allowed = set(response.headers["Allow"].split(", "))
        assert allowed == served, path
    response = await gateway.client.put("/v1/jobs/x", headers=gateway.auth())
    assert set(response.headers["Allow"].split(", ")) == {"GET", "DELETE"}


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("multipart/form-data", b"xx"),  # no boundary
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data\r\n\r\n"),
        ("application/json", b'{"prompt": "a", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"),
        ("application/json", b'{"prompt": '),
        ("application/json", b"\xff\xfe\xfa"),
        ("text/plain", b"a prompt"),
    ],
)
async def test_framework_400s_have_a_code(gateway: Gateway, content_type: str, raw: bytes) -> None:
    headers = {**gateway.auth(), "Content-Type": content_type}
    for path in ("/v1/images/edits", "/v1/jobs"):
        response = await gateway.client.post(path, content=raw, headers=headers)
        assert 400 <= response.status_code < 500, response.text
        error = error_of(response, response.status_code)
        assert isinstance(error["code"], str) and error["code"], (path, error)


def test_errors_without_a_code_of_their_own_get_one() -> None:
    for status in (400, 403, 409, 418, 500, 502):
        body = APIError(status, "x").response().body
        assert b'"code":null' not in body
