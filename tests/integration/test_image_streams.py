"""Streaming and edits with the official `openai` client, against a full stack (real
Temporal, gateway and worker processes, the shipped model)."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
from PIL import Image

from tests.integration.conftest import Stack
from tests.integration.test_openai_client import PROMPT, client


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_streamed_generation_yields_partials_then_the_image(stack: Stack) -> None:
    api = client(stack, stack.new_key())
    stream = api.images.generate(
        model=stack.model, prompt=PROMPT, size="256x256", stream=True, partial_images=2
    )
    events = list(stream)
    types = [event.type for event in events]
    assert types == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    assert [p.partial_image_index for p in partials] == [0, 1]
    final = decode(events[-1].b64_json).convert("RGB")
    assert final.size == (256, 256)
    assert events[-1].usage.output_tokens == 64
    pictures = []
    for partial in partials:
        assert partial.size == "256x256" and partial.output_format == "png"
        picture = decode(partial.b64_json).convert("RGB")
        assert picture.size == (256, 256)
        # Upscaled from the model's 64x64 preview, nearest-neighbour: flat 4x4 blocks.
        pixels = np.asarray(picture)
        assert (pixels == np.repeat(np.repeat(pixels[::4, ::4], 4, 0), 4, 1)).all()
        pictures.append(pixels)
    # Real previews of an unfinished render, not copies of the final image.
    assert not (pictures[0] == np.asarray(final)).all()
    assert not (pictures[0] == pictures[1]).all()


def test_streamed_edit_with_mask_changes_only_the_masked_area(stack: Stack) -> None:
    api = client(stack, stack.new_key())
    made = api.images.generate(model=stack.model, prompt=PROMPT, size="256x256")
    assert made.data is not None and made.data[0].b64_json is not None
    source = decode(made.data[0].b64_json).convert("RGB")
    # OpenAI's meaning: transparent (alpha 0) may change. The left half here.
    mask = Image.new("RGBA", source.size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 128, 256))

    stream = api.images.edit(
        model=stack.model,
        image=("source.png", png(source), "image/png"),
        mask=("mask.png", png(mask), "image/png"),
        prompt="add a large blue square on the left",
        stream=True,
        partial_images=1,
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    edited = np.asarray(decode(events[-1].b64_json).convert("RGB"))
    before = np.asarray(source)
    assert edited.shape == before.shape
    assert (edited[:, 128:] == before[:, 128:]).all(), "pixels outside the mask changed"
    assert not (edited[:, :128] == before[:, :128]).all(), "the masked area did not change"


def test_bad_uploads_raise_bad_request(stack: Stack) -> None:
    api = client(stack, stack.new_key())
    image = png(Image.new("RGB", (64, 64), "white"))
    with pytest.raises(openai.BadRequestError, match="not a PNG, JPEG or WebP"):
        api.images.edit(model=stack.model, image=("a.png", b"not an image"), prompt="p")
    small_mask = png(Image.new("RGBA", (32, 32)))
    with pytest.raises(openai.BadRequestError, match="same size"):
        api.images.edit(
            model=stack.model,
            image=("a.png", image, "image/png"),
            mask=("m.png", small_mask, "image/png"),
            prompt="p",
        )
