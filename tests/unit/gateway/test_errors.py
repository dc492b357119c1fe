"""Bad input gets a 4xx in OpenAI's error shape that says what to fix; never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.gateway.conftest import Gateway

GENERATE = "/v1/images/generations"


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize("path", [GENERATE, "/v1/jobs"])
@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "   "}, "prompt", "empty"),
        ({"prompt": "x" * 40_000}, "prompt", "32000"),
        ({}, "prompt", "Missing required parameter"),
        ({"prompt": "a", "n": 0}, "n", "greater than or equal to 1"),
        ({"prompt": "a", "n": 100}, "n", "less than or equal to 10"),
        ({"prompt": "a", "n": "many"}, "n", "integer"),
        ({"prompt": "a", "size": "13x7"}, "size", "Supported sizes: auto, 64x64"),
        ({"prompt": "a", "size": "256x1024"}, "size", "at most 3 times the shorter"),
        ({"prompt": "a", "size": "1000x1000"}, "size", "multiples of 16"),
        ({"prompt": "a", "size": "4096x2048"}, "size", "within 3840x2160"),
        ({"prompt": "a", "size": "48x96"}, "size", "at least 64"),
        ({"prompt": "a", "background": "clear"}, "background", "transparent"),
        (
            {"prompt": "a", "background": "transparent", "output_format": "jpeg"},
            "background",
            "JPEG has no transparency",
        ),
        ({"prompt": "a", "size": "big"}, "size", "not supported"),
        ({"prompt": "a", "model": "dall-e-9"}, "model", "Known models: builtin"),
        ({"prompt": "a", "output_format": "gif"}, "output_format", "png"),
        ({"prompt": "a", "output_compression": 101}, "output_compression", "100"),
        ({"prompt": "a", "quality": "ultra"}, "quality", "hd"),
    ],
)
async def test_bad_fields_are_400_naming_the_field(
    gateway: Gateway, path: str, body: dict[str, Any], param: str, words: str
) -> None:
    error = error_of(await gateway.client.post(path, json=body, headers=gateway.auth()), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]
    assert gateway.engine.submitted == []


async def test_bad_response_format(gateway: Gateway) -> None:
    body = {"prompt": "a", "response_format": "jpeg"}
    error = error_of(await gateway.client.post(GENERATE, json=body, headers=gateway.auth()), 400)
    assert error["param"] == "response_format"


async def test_partial_images_out_of_range_is_400(gateway: Gateway) -> None:
    body = {"prompt": "a", "stream": True, "partial_images": 4}
    error = error_of(await gateway.client.post(GENERATE, json=body, headers=gateway.auth()), 400)
    assert error["param"] == "partial_images"


async def test_malformed_json_is_400(gateway: Gateway) -> None:
    headers = {**gateway.auth(), "Content-Type": "application/json"}
    response = await gateway.client.post(GENERATE, content=b'{"prompt": "a",', headers=headers)
    error = error_of(response, 400)
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"a prompt"', b"null"])
async def test_json_that_is_not_an_object_is_400(gateway: Gateway, raw: bytes) -> None:
    headers = {**gateway.auth(), "Content-Type": "application/json"}
    error = error_of(await gateway.client.post(GENERATE, content=raw, headers=headers), 400)
    assert "JSON" in error["message"]


async def test_body_too_large_is_413(gateway: Gateway) -> None:
    body = {"prompt": "a", "pad": "x" * 200_000}
    error = error_of(await gateway.client.post(GENERATE, json=body, headers=gateway.auth()), 413)
    assert "100000 bytes" in error["message"]


async def test_unknown_fields_are_ignored(gateway: Gateway) -> None:
    body = {"prompt": "a", "size": "64x64", "style": "vivid", "background": "auto", "x": 1}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer dg-wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": ""},
    ],
)
async def test_missing_or_wrong_key_is_401(gateway: Gateway, headers: dict[str, str]) -> None:
    response = await gateway.client.post(GENERATE, json={"prompt": "a"}, headers=headers)
    error = error_of(response, 401)
    assert error == {
        "message": error["message"],
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert "API key" in error["message"]


async def test_wrong_key_is_not_echoed(gateway: Gateway) -> None:
    secret = "dg-this-is-a-long-wrong-key-1234"
    headers = {"Authorization": f"Bearer {secret}"}
    error = error_of(await gateway.client.get("/v1/jobs/x", headers=headers), 401)
    assert secret not in error["message"]


async def test_auth_is_checked_before_the_body(gateway: Gateway) -> None:
    response = await gateway.client.post(GENERATE, json={"prompt": ""})
    assert response.status_code == 401


async def test_unknown_job_is_404(gateway: Gateway) -> None:
    for method in ("GET", "DELETE"):
        response = await gateway.client.request(method, "/v1/jobs/nope", headers=gateway.auth())
        assert "nope" in error_of(response, 404)["message"]
    response = await gateway.client.get("/v1/jobs/nope/events", headers=gateway.auth())
    error_of(response, 404)


async def test_another_accounts_job_is_404(gateway: Gateway) -> None:
    created = await gateway.client.post(
        "/v1/jobs", json={"prompt": "mine", "size": "64x64"}, headers=gateway.auth()
    )
    job_id = created.json()["id"]
    theirs = gateway.auth(gateway.other_key)
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("DELETE", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
    ]:
        error_of(await gateway.client.request(method, path, headers=theirs), 404)


async def test_unknown_route_and_method(gateway: Gateway) -> None:
    error_of(await gateway.client.get("/v1/nothing-here", headers=gateway.auth()), 404)
    error_of(await gateway.client.put("/v1/jobs", headers=gateway.auth()), 405)


async def test_engine_down_is_503_and_forgets_the_job(gateway: Gateway) -> None:
    gateway.engine.available = False
    body = {"prompt": "a", "size": "64x64", "id": "job-when-down"}
    response = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    error = error_of(response, 503)
    assert error["code"] == "engine_unavailable"
    assert response.headers["Retry-After"]
    assert gateway.store.jobs.get("job-when-down") is None
    gateway.engine.available = True
    response = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert response.status_code == 202
