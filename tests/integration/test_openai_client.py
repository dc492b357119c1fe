"""The official `openai` package, pointed at Daguerre, works unchanged."""

from __future__ import annotations

import base64
import io
import json

import c2pa
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
    # Content credentials: a C2PA reader finds a valid manifest naming the model.
    report = json.loads(c2pa.Reader("image/png", io.BytesIO(base64.b64decode(b64))).json())
    assert report["validation_state"] == "Valid"
    manifest = report["manifests"][report["active_manifest"]]
    (actions,) = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    (created,) = actions["data"]["actions"]
    assert created["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert created["softwareAgent"]["name"] == stack.model


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
    # Prompt moderation answers OpenAI's refusal, which the client raises as such.
    with pytest.raises(openai.BadRequestError) as refused:
        api.images.generate(model="gpt-image-1", prompt="a large red circle, nsfw")
    assert refused.value.code == "moderation_blocked"


def test_todays_parameters_a_wide_transparent_webp_under_an_openai_name(stack: Stack) -> None:
    """`images.generate` as a current OpenAI client sends it: a landscape size, an OpenAI
    model name, a transparent background, a quality and WebP. The square scene is centred
    in the frame, and its background really is transparent."""
    if stack.model != "builtin":
        pytest.skip("transparent backgrounds are the built-in model's (flat pictures)")
    result = client(stack, stack.new_key()).images.generate(
        model="gpt-image-1",
        prompt=PROMPT,
        size="1536x1024",
        background="transparent",
        quality="high",
        output_format="webp",
    )
    assert result.background == "transparent" and result.output_format == "webp"
    assert result.size == "1536x1024" and result.quality == "high"
    assert result.usage is not None and result.usage.output_tokens_details is not None
    assert result.data is not None and result.data[0].b64_json is not None
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.format == "WEBP" and image.mode == "RGBA" and image.size == (1536, 1024)
    alpha = image.getchannel("A")
    assert alpha.getpixel((10, 10)) == 0 and alpha.getpixel((768, 512)) == 255
    # The centred square, laid on white again, is the picture the prompt asks for.
    square = image.crop((256, 0, 1280, 1024))
    on_white = Image.alpha_composite(Image.new("RGBA", square.size, "white"), square)
    spec = parse_caption(PROMPT)
    assert spec is not None
    assert check(on_white.convert("RGB"), spec).ok, check(on_white.convert("RGB"), spec).reasons


def test_edits_as_json_by_data_url_and_by_file_id_and_several_images_refused(
    stack: Stack,
) -> None:
    """The JSON form of an edit (OpenAI's ``images`` by reference: a data URL, then an
    uploaded file's id), sent through the official client's own request method; and
    several images, which the built-in model refuses clearly instead of editing the
    first one silently."""
    if stack.model != "builtin":
        pytest.skip("the test model does not edit")
    api = client(stack, stack.new_key())
    made = api.images.generate(model="gpt-image-1", prompt=PROMPT, size="256x256")
    assert made.data is not None and made.data[0].b64_json is not None
    url = f"data:image/png;base64,{made.data[0].b64_json}"
    body = {
        "model": "gpt-image-1",
        "prompt": "make the circle green",
        "images": [{"image_url": url}],
    }
    edited = api.post("/images/edits", body=body, cast_to=openai.types.ImagesResponse)
    assert edited.data is not None and edited.data[0].b64_json is not None
    image = Image.open(io.BytesIO(base64.b64decode(edited.data[0].b64_json)))
    assert image.size == (256, 256)
    spec = parse_caption("a large green circle in the center, on a white background")
    assert spec is not None
    assert check(image, spec).ok, check(image, spec).reasons

    png = base64.b64decode(made.data[0].b64_json)
    # The same picture uploaded once through the Files API, then named by its id.
    uploaded = api.files.create(file=("circle.png", io.BytesIO(png)), purpose="vision")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(png)
    body = {"prompt": "make the circle green", "images": [{"file_id": uploaded.id}]}
    by_id = api.post("/images/edits", body=body, cast_to=openai.types.ImagesResponse)
    assert by_id.data is not None and by_id.data[0].b64_json is not None
    image = Image.open(io.BytesIO(base64.b64decode(by_id.data[0].b64_json)))
    assert check(image, spec).ok, check(image, spec).reasons
    assert api.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(uploaded.id)

    with pytest.raises(openai.BadRequestError, match="2 were sent"):
        api.images.edit(
            model="gpt-image-1",
            image=[("a.png", io.BytesIO(png)), ("b.png", io.BytesIO(png))],
            prompt="make the circle green",
        )
