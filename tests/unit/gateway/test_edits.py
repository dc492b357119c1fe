"""POST /v1/images/edits: multipart uploads, checked before anything is stored.

Every bad upload is a 400 in OpenAI's shape that names the field, never a 5xx."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from daguerre.domain import JobSpec
from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_streaming import parse_sse

EDITS = "/v1/images/edits"


def image_bytes(size: tuple[int, int] = (64, 64), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    colour: Any = (0, 0, 0, 0) if mode == "RGBA" else (250, 250, 250)
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def post_edit(
    gateway: Gateway, files: list[tuple[str, Any]], data: dict[str, str] | None = None
) -> Any:
    fields = {"prompt": "make the circle blue", **(data or {})}
    return await gateway.client.post(EDITS, files=files, data=fields, headers=gateway.auth())


def error_of(response: Any, param: str | None) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    return str(error["message"])


async def test_edit_stores_the_upload_and_edits_it(gateway: Gateway) -> None:
    files = [
        ("image", ("a.png", image_bytes(), "image/png")),
        ("mask", ("m.png", image_bytes(mode="RGBA"), "image/png")),
    ]
    response = await post_edit(gateway, files)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1
    job_id = gateway.engine.submitted[-1][0]
    job = gateway.store.jobs.get(job_id)
    assert job is not None
    spec: JobSpec = job.spec
    assert spec.is_edit and spec.source_key and spec.mask_key
    assert (spec.width, spec.height) == (64, 64)  # "auto": the source's own size
    source = Image.open(io.BytesIO(gateway.store.blobs.get(spec.source_key)))
    assert source.format == "PNG" and source.size == (64, 64)


async def test_jpeg_and_webp_are_accepted(gateway: Gateway) -> None:
    for name, fmt in (("a.jpg", "JPEG"), ("b.webp", "WEBP")):
        files = [("image[]", (name, image_bytes(fmt=fmt), f"image/{fmt.lower()}"))]
        response = await post_edit(gateway, files, {"size": "128x128"})
        assert response.status_code == 200, response.text
        assert response.json()["size"] == "128x128"


async def test_more_images_than_the_model_edits_are_refused_not_dropped(gateway: Gateway) -> None:
    files = [
        ("image[]", ("a.jpg", image_bytes(fmt="JPEG"), "image/jpeg")),
        ("image[]", ("b.webp", image_bytes(fmt="WEBP"), "image/webp")),
    ]
    response = await post_edit(gateway, files)
    message = error_of(response, "image")
    assert "edits 1 image(s) at a time, and 2 were sent" in message
    assert response.json()["error"]["code"] == "too_many_images"
    assert gateway.engine.submitted == []


async def test_an_idempotency_key_makes_a_retried_edit_the_same_job(gateway: Gateway) -> None:
    files = [("image", ("a.png", image_bytes(), "image/png"))]
    key = {"Idempotency-Key": "edit-once"}
    fields = {"prompt": "make the circle green", "size": "64x64"}
    first, again = [
        await gateway.client.post(EDITS, files=files, data=fields, headers=gateway.auth() | key)
        for _ in range(2)
    ]
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert len(gateway.engine.submitted) == 1  # one job, started once
    # The same key for another picture is another request: a 409, not the first's image.
    other = [("image", ("b.png", image_bytes(fmt="PNG", size=(32, 32)), "image/png"))]
    response = await gateway.client.post(
        EDITS, files=other, data=fields, headers=gateway.auth() | key
    )
    assert response.status_code == 409, response.text
    assert len(gateway.engine.submitted) == 1


async def test_edit_streams_image_edit_events(gateway: Gateway) -> None:
    files = [("image", ("a.png", image_bytes(), "image/png"))]
    response = await post_edit(gateway, files, {"stream": "true", "partial_images": "1"})
    names = [name for name, _ in parse_sse(response.text)]
    assert names == ["image_edit.partial_image", "image_edit.completed"]


async def test_missing_image(gateway: Gateway) -> None:
    response = await gateway.client.post(
        EDITS, files=[("other", ("x", b"x"))], data={"prompt": "p"}, headers=gateway.auth()
    )
    assert "'image'" in error_of(response, "image")


async def test_neither_multipart_nor_json(gateway: Gateway) -> None:
    headers = gateway.auth() | {"Content-Type": "text/plain"}
    response = await gateway.client.post(EDITS, content=b"p", headers=headers)
    assert "multipart" in error_of(response, None)
    response = await gateway.client.post(EDITS, json={"prompt": "p"}, headers=gateway.auth())
    assert "images" in error_of(response, "images")


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


async def post_json(gateway: Gateway, **body: Any) -> Any:
    body = {"prompt": "make the circle blue", **body}
    return await gateway.client.post(EDITS, json=body, headers=gateway.auth())


async def test_a_json_edit_takes_its_images_as_data_urls(gateway: Gateway) -> None:
    mask = image_bytes(mode="RGBA")
    response = await post_json(
        gateway, images=[{"image_url": data_url(image_bytes())}], mask={"image_url": data_url(mask)}
    )
    assert response.status_code == 200, response.text
    job = gateway.store.jobs.get(gateway.engine.submitted[-1][0])
    assert job is not None and job.spec.source_key and job.spec.mask_key
    assert (job.spec.width, job.spec.height) == (64, 64)  # "auto": the source's own size
    source = Image.open(io.BytesIO(gateway.store.blobs.get(job.spec.source_key)))
    assert source.format == "PNG" and source.size == (64, 64)


@pytest.mark.parametrize(
    ("image", "param", "words"),
    [
        ({"image_url": "https://example.com/a.png"}, "images", "does not download"),
        ({"file_id": "file-abc"}, "images", "no file found with id 'file-abc'"),
        ({"file_id": "file-abc", "image_url": "data:,"}, "images", "either an image_url"),
        ({"image_url": "data:image/png;base64,%%%"}, "images", "does not decode"),
        ({"image_url": data_url(b"hello, not pixels")}, "image", "not a PNG, JPEG or WebP"),
        ({"image_url": "x", "surprise": 1}, "images.0.surprise", "Extra inputs"),
    ],
)
async def test_a_json_edit_with_a_bad_image_is_a_400_naming_it(
    gateway: Gateway, image: dict[str, Any], param: str, words: str
) -> None:
    assert words in error_of(await post_json(gateway, images=[image]), param)
    assert gateway.engine.submitted == []


async def test_a_json_edit_with_more_images_than_the_model_edits(gateway: Gateway) -> None:
    images = [{"image_url": data_url(image_bytes())}] * 2
    assert "2 were sent" in error_of(await post_json(gateway, images=images), "image")


async def test_not_an_image(gateway: Gateway) -> None:
    files = [("image", ("a.png", b"hello, not pixels", "image/png"))]
    assert "not a PNG, JPEG or WebP" in error_of(await post_edit(gateway, files), "image")


async def test_wrong_image_type(gateway: Gateway) -> None:
    files = [("image", ("a.gif", image_bytes(fmt="GIF"), "image/gif"))]
    assert "not a PNG, JPEG or WebP" in error_of(await post_edit(gateway, files), "image")


async def test_empty_file(gateway: Gateway) -> None:
    files = [("image", ("a.png", b"", "image/png"))]
    assert "empty" in error_of(await post_edit(gateway, files), "image")


async def test_truncated_image(gateway: Gateway) -> None:
    data = image_bytes((64, 64), "JPEG")
    files = [("image", ("a.jpg", data[: len(data) // 2], "image/jpeg"))]
    assert "damaged or truncated" in error_of(await post_edit(gateway, files), "image")


async def test_decompression_bomb_is_refused_before_decoding(gateway: Gateway) -> None:
    files = [("image", ("bomb.png", png_claiming(100_000, 100_000), "image/png"))]
    assert "too many pixels" in error_of(await post_edit(gateway, files), "image")
    files = [("image", ("big.png", png_claiming(5000, 5000), "image/png"))]
    message = error_of(await post_edit(gateway, files), "image")
    assert "5000x5000" in message and str(4096 * 4096) in message


async def test_mask_must_match_the_image(gateway: Gateway) -> None:
    files = [
        ("image", ("a.png", image_bytes((64, 64)), "image/png")),
        ("mask", ("m.png", image_bytes((32, 32), mode="RGBA"), "image/png")),
    ]
    message = error_of(await post_edit(gateway, files), "mask")
    assert "32x32" in message and "64x64" in message


async def test_mask_needs_alpha(gateway: Gateway) -> None:
    files = [
        ("image", ("a.png", image_bytes(), "image/png")),
        ("mask", ("m.png", image_bytes(), "image/png")),
    ]
    assert "alpha" in error_of(await post_edit(gateway, files), "mask")


async def test_too_many_images(gateway: Gateway) -> None:
    small = image_bytes((8, 8))
    files = [("image[]", (f"{i}.png", small, "image/png")) for i in range(17)]
    assert "at most 16" in error_of(await post_edit(gateway, files), "image")


async def test_bad_text_field_names_it(gateway: Gateway) -> None:
    files = [("image", ("a.png", image_bytes(), "image/png"))]
    response = await post_edit(gateway, files, {"n": "100"})
    assert "'n'" in error_of(response, "n")
    response = await gateway.client.post(EDITS, files=files, headers=gateway.auth())
    assert "prompt" in error_of(response, "prompt")


async def test_body_over_the_upload_limit_is_413(gateway: Gateway) -> None:
    files = [("image", ("a.png", b"\0" * (gateway.settings.max_upload_bytes + 1), "image/png"))]
    response = await post_edit(gateway, files)
    assert response.status_code == 413
