"""The official `openai` package, pointed at Daguerre, works unchanged."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from daguerre.models.builtin.checker import check
from daguerre.models.builtin.grammar import parse_caption
from tests.integration.conftest import Stack

PROMPT = "a large red circle in the center, on a white background"


def client(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=120)


def test_images_generate_b64_json(stack: Stack) -> None:
    result = client(stack, stack.new_key()).images.generate(
        model=stack.model, prompt=PROMPT, size="512x512", response_format="b64_json"
    )
    assert result.data is not None and len(result.data) == 1
    b64 = result.data[0].b64_json
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    assert image.size == (512, 512)
    if stack.model == "builtin":
        # Not just a PNG: the picture the prompt asks for, read back from the pixels.
        spec = parse_caption(PROMPT)
        assert spec is not None
        assert check(image, spec).ok, check(image, spec).reasons
    assert result.usage is not None and result.usage.total_tokens > 0
    assert result.created > 0


def test_images_generate_url_and_n(stack: Stack) -> None:
    result = client(stack, stack.new_key()).images.generate(
        model=stack.model, prompt=PROMPT, size="128x128", response_format="url", n=2
    )
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.url is not None
        fetched = httpx.get(item.url)  # a signed link: no key needed, as in an <img> tag
        assert fetched.status_code == 200
        assert Image.open(io.BytesIO(fetched.content)).size == (128, 128)


def test_errors_raise_the_usual_exceptions(stack: Stack) -> None:
    api = client(stack, stack.new_key())
    with pytest.raises(openai.BadRequestError, match="Supported sizes"):
        api.images.generate(model=stack.model, prompt=PROMPT, size="13x7")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="Known models"):
        api.images.generate(model="no-such-model", prompt=PROMPT)
    with pytest.raises(openai.BadRequestError, match="n"):
        api.images.generate(model=stack.model, prompt=PROMPT, n=100)
    with pytest.raises(openai.AuthenticationError):
        client(stack, "dg-wrong").images.generate(model=stack.model, prompt=PROMPT)
