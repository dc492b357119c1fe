"""OpenAI-style image streams, against the fake engine (which writes partial images
where the worker would)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from PIL import Image

from daguerre.domain import partial_steps
from tests.unit.gateway.conftest import Gateway

GENERATE = "/v1/images/generations"


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        name = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = next((line[6:] for line in lines if line.startswith("data: ")), None)
        if name and data:
            events.append((name, json.loads(data)))
    return events


def test_partial_steps_spread_over_the_render() -> None:
    assert partial_steps(8, 0) == []
    assert partial_steps(8, 1) == [4]
    assert partial_steps(8, 2) == [3, 5]
    assert partial_steps(8, 3) == [2, 4, 6]
    assert partial_steps(3, 3) == [1, 2]  # never the last step, never twice
    assert partial_steps(1, 2) == []


async def test_stream_sends_partials_then_completed(gateway: Gateway) -> None:
    body = {"prompt": "a red circle", "size": "64x64", "stream": True, "partial_images": 2}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    for index, (_, data) in enumerate(events[:2]):
        assert data["type"] == "image_generation.partial_image"
        assert data["partial_image_index"] == index
        assert data["size"] == "64x64" and data["output_format"] == "png"
        assert {"created_at", "quality", "background"} <= set(data)
        image = Image.open(io.BytesIO(base64.b64decode(data["b64_json"])))
        assert image.size == (64, 64)
    done = events[-1][1]
    assert done["usage"]["output_tokens"] == 4
    assert Image.open(io.BytesIO(base64.b64decode(done["b64_json"]))).size == (64, 64)


async def test_stream_without_partials_sends_only_the_image(gateway: Gateway) -> None:
    body = {"prompt": "a red circle", "size": "64x64", "stream": True}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert [name for name, _ in parse_sse(response.text)] == ["image_generation.completed"]
