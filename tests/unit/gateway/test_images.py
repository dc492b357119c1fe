"""POST /v1/images/generations and the image files it links to."""

from __future__ import annotations

import base64
import io
from urllib.parse import parse_qs, urlparse

from PIL import Image

from daguerre.domain import JobStatus
from tests.unit.gateway.conftest import Gateway

GENERATE = "/v1/images/generations"


async def test_b64_json_response_matches_openai(gateway: Gateway) -> None:
    body = {"prompt": "a red circle", "size": "256x256", "model": "builtin", "user": "u1"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data["created"], int)
    assert set(data["usage"]) == {
        "total_tokens", "input_tokens", "output_tokens", "input_tokens_details",
        "output_tokens_details",
    }  # fmt: skip
    assert data["usage"]["input_tokens_details"]["text_tokens"] >= 1
    assert data["size"] == "256x256" and data["output_format"] == "png"
    (item,) = data["data"]
    assert set(item) == {"b64_json"}
    image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    assert image.format == "PNG" and image.size == (256, 256)


async def test_auto_size_and_n(gateway: Gateway) -> None:
    body = {"prompt": "a", "n": 3, "output_format": "jpeg"}
    data = (await gateway.client.post(GENERATE, json=body, headers=gateway.auth())).json()
    assert data["size"] == "512x512"
    assert len(data["data"]) == 3
    image = Image.open(io.BytesIO(base64.b64decode(data["data"][0]["b64_json"])))
    assert image.format == "JPEG"


async def test_url_response_works_with_signature_or_owner_key(gateway: Gateway) -> None:
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    data = (await gateway.client.post(GENERATE, json=body, headers=gateway.auth())).json()
    url = data["data"][0]["url"]
    assert url.startswith("http://gw/v1/images/files/")
    signed = await gateway.client.get(url)  # no key: the signature is enough
    assert signed.status_code == 200 and signed.headers["content-type"] == "image/png"
    path = urlparse(url).path
    assert (await gateway.client.get(path, headers=gateway.auth())).status_code == 200
    assert (await gateway.client.get(path)).status_code == 401
    theirs = await gateway.client.get(path, headers=gateway.auth(gateway.other_key))
    assert theirs.status_code == 404
    query = parse_qs(urlparse(url).query)
    forged = f"{path}?exp={query['exp'][0]}&sig={'0' * 64}"
    assert (await gateway.client.get(forged)).status_code == 403
    expired = f"{path}?exp=1&sig={query['sig'][0]}"
    assert (await gateway.client.get(expired)).status_code == 403


async def test_failed_job_by_model_input_is_400(gateway: Gateway) -> None:
    gateway.engine.render = False

    async def fail(job_id: str, *args: object, **kwargs: object) -> None:
        gateway.store.jobs.finish(job_id, JobStatus.FAILED, "no such shape", "invalid_request")

    gateway.engine.submit = fail  # type: ignore[method-assign]
    response = await gateway.client.post(GENERATE, json={"prompt": "a"}, headers=gateway.auth())
    assert response.status_code == 400
    assert "no such shape" in response.json()["error"]["message"]


async def test_failed_job_by_the_service_is_500_with_reason(gateway: Gateway) -> None:
    async def fail(job_id: str, *args: object, **kwargs: object) -> None:
        gateway.store.jobs.finish(job_id, JobStatus.FAILED, "worker exploded", "render_failed")

    gateway.engine.submit = fail  # type: ignore[method-assign]
    response = await gateway.client.post(GENERATE, json={"prompt": "a"}, headers=gateway.auth())
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "worker exploded" in response.json()["error"]["message"]


async def test_models_list(gateway: Gateway) -> None:
    data = (await gateway.client.get("/v1/models", headers=gateway.auth())).json()
    assert data["data"][0]["id"] == "builtin"
    assert "1024x1024" in data["data"][0]["sizes"]
