"""A finished job whose images the blob store does not hold: the worker stored them where
this gateway cannot read them (a blob folder per host), or retention deleted them. The
client gets a 410 that says which, never a 500, and a stream never sends a "completed"
event with an empty image."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import pytest

from daguerre.store.blobs import BlobStoreUnavailable
from daguerre.store.tables import utcnow
from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_streaming import parse_sse

GENERATE = "/v1/images/generations"


class ElsewhereBlobs:
    """The gateway's blob store, seen by a worker that keeps finished images in a store
    of its own: every other blob (previews, partials) is shared, the images are not."""

    def __init__(self, shared: object) -> None:
        self._shared = shared

    def put(self, key: str, data: bytes) -> None:
        if not key.startswith("images/"):
            self._shared.put(key, data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._shared, name)


@pytest.fixture
def worker_elsewhere(gateway: Gateway) -> Gateway:
    gateway.engine.store = type(gateway.store)(
        **{**gateway.store.__dict__, "blobs": ElsewhereBlobs(gateway.store.blobs)}
    )
    return gateway


async def test_b64_answer_for_a_missing_image_is_410_not_500(worker_elsewhere: Gateway) -> None:
    gateway = worker_elsewhere
    body = {"prompt": "a", "size": "64x64"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 410, response.text
    error = response.json()["error"]
    assert error["code"] == "image_missing" and "no longer stored" in error["message"]
    metrics = (await gateway.client.get("/metrics")).text
    assert "daguerre_blobs_missing_total 1.0" in metrics


async def test_url_of_a_missing_image_is_410(worker_elsewhere: Gateway) -> None:
    gateway = worker_elsewhere
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200  # the URL is handed out; the image is checked when fetched
    url = response.json()["data"][0]["url"]
    for fetch in (url, urlparse(url).path):
        answer = await gateway.client.get(fetch, headers=gateway.auth())
        assert answer.status_code == 410 and answer.json()["error"]["code"] == "image_missing"


async def test_stream_sends_an_error_not_an_empty_completed(worker_elsewhere: Gateway) -> None:
    gateway = worker_elsewhere
    body = {"prompt": "a", "size": "64x64", "stream": True, "partial_images": 1}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names == ["image_generation.partial_image", "error"], names
    assert events[-1][1]["error"]["code"] == "image_missing"


async def test_expired_images_answer_410_with_the_reason(gateway: Gateway) -> None:
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    url = response.json()["data"][0]["url"]
    image_id = urlparse(url).path.rsplit("/", 1)[1]
    image = gateway.store.jobs.get_image(image_id)
    assert image is not None
    # What the retention sweep does once the job is past its tier's retention.
    for prefix in ("images", "previews"):
        gateway.store.blobs.delete_prefix(f"{prefix}/{image.job_id}")
    gateway.store.expiry.mark_expired([image.job_id], utcnow() - timedelta(hours=1))
    answer = await gateway.client.get(url)
    assert answer.status_code == 410
    error = answer.json()["error"]
    assert error["code"] == "image_expired" and "your plan keeps images" in error["message"]
    described = await gateway.client.get(f"/v1/jobs/{image.job_id}", headers=gateway.auth())
    assert described.json()["expired_at"] is not None


class DownBlobs:
    """A blob store in an outage: every call fails as the object store's do."""

    def __getattr__(self, name: str) -> object:
        def fail(*args: object) -> None:
            raise BlobStoreUnavailable("blob store s3://bucket at http://s3: connection refused")

        return fail


async def test_blob_store_outage_is_a_503_to_retry_and_shows_in_readyz(gateway: Gateway) -> None:
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    url = response.json()["data"][0]["url"]
    gateway.store.blobs = DownBlobs()  # type: ignore[assignment]
    answer = await gateway.client.get(url)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    error = answer.json()["error"]
    assert error["code"] == "storage_unavailable" and "s3://" not in error["message"]
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200  # reported, not deciding: see routes/health.py
    assert ready.json()["checks"]["blobs"] == "unavailable"
