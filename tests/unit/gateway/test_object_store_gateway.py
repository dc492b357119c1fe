"""The gateway on the object-store backend (DAGUERRE_BLOB_URL): images as b64_json and as
signed links, and an edit's uploads, all through a real S3-compatible server
(tests/support/s3_server.py), with nothing written to the local blob folder.

Signed links still go through the gateway: it checks the link's HMAC and sets the image's
headers, and the bucket need not be reachable from clients.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from daguerre.config import Settings
from daguerre.store.object_blobs import S3BlobStore
from tests.support.s3_server import S3Server, s3_server
from tests.unit.gateway.conftest import Gateway, running_gateway
from tests.unit.gateway.test_edits import image_bytes, post_edit

GENERATE = "/v1/images/generations"
PREFIX = "gw"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as started:
        yield started


@pytest.fixture
async def gateway(server: S3Server, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings(
        data_dir=tmp_path,
        events_poll_interval_s=0.02,
        max_body_bytes=100_000,
        **server.settings_values(PREFIX),
    )
    async with running_gateway(settings) as gateway:
        assert isinstance(gateway.store.blobs, S3BlobStore)
        yield gateway
    assert not (tmp_path / "blobs").exists()  # every blob went to the bucket


def bucket_keys(server: S3Server, job_id: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=server.bucket, Prefix=f"{PREFIX}/")
    return [item["Key"] for item in listing.get("Contents", []) if job_id in item["Key"]]


async def test_b64_json_comes_from_the_bucket(gateway: Gateway, server: S3Server) -> None:
    body = {"prompt": "a red circle", "size": "64x64"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["data"][0]["b64_json"])))
    assert image.format == "PNG" and image.size == (64, 64)
    job_id = gateway.engine.submitted[-1][0]
    assert f"{PREFIX}/images/{job_id}/0.png" in bucket_keys(server, job_id)


async def test_a_signed_link_serves_the_image_from_the_bucket(
    gateway: Gateway, server: S3Server
) -> None:
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200, response.text
    url = response.json()["data"][0]["url"]
    assert url.startswith("http://gw/v1/images/files/")  # the gateway's, not the bucket's
    signed = await gateway.client.get(url)  # no key: the signature is enough
    assert signed.status_code == 200 and signed.headers["content-type"] == "image/png"
    job_id = gateway.engine.submitted[-1][0]
    stored = server.client().get_object(Bucket=server.bucket, Key=f"{PREFIX}/images/{job_id}/0.png")
    assert signed.content == stored["Body"].read()


async def test_an_edit_keeps_its_uploads_in_the_bucket(gateway: Gateway, server: S3Server) -> None:
    files = [
        ("image", ("a.png", image_bytes(), "image/png")),
        ("mask", ("m.png", image_bytes(mode="RGBA"), "image/png")),
    ]
    response = await post_edit(gateway, files)
    assert response.status_code == 200, response.text
    job_id = gateway.engine.submitted[-1][0]
    keys = bucket_keys(server, job_id)
    assert f"{PREFIX}/uploads/{job_id}/source.png" in keys
    assert f"{PREFIX}/uploads/{job_id}/mask.png" in keys
