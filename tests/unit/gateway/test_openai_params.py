"""Today's OpenAI image parameters at the gateway: any size by OpenAI's rule, OpenAI's
model names as aliases, ``background`` resolved and echoed, and usage's output details."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from daguerre.config import ModelCatalogEntry, Settings
from daguerre.domain import JobSpec
from tests.unit.gateway.conftest import Gateway, running_gateway

GENERATE = "/v1/images/generations"


async def generate(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    body = {"prompt": "a red circle", **fields}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


def last_spec(gateway: Gateway) -> JobSpec:
    job = gateway.store.jobs.get(gateway.engine.submitted[-1][0])
    assert job is not None
    return job.spec


@pytest.mark.parametrize(
    ("size", "frame"),
    [
        ("1536x1024", (1536, 1024)),
        ("1024x1536", (1024, 1536)),
        ("3840x2160", (3840, 2160)),
        ("2160x3840", (2160, 3840)),
        ("192x64", (192, 64)),  # 3:1, the widest allowed
        ("768x768", (768, 768)),  # a square off the catalog's list, by the rule
        ("512x512", (512, 512)),
    ],
)
async def test_sizes_by_openais_rule_are_served(
    gateway: Gateway, size: str, frame: tuple[int, int]
) -> None:
    body = await generate(gateway, size=size)
    assert body["size"] == size
    spec = last_spec(gateway)
    assert (spec.width, spec.height) == frame


@pytest.mark.parametrize(
    "name", ["gpt-image-1", "gpt-image-1.5", "gpt-image-2", "chatgpt-image-latest", "dall-e-3"]
)
async def test_openais_model_names_map_to_the_served_model(gateway: Gateway, name: str) -> None:
    await generate(gateway, model=name, size="64x64")
    assert last_spec(gateway).model == "builtin"


async def test_models_lists_the_aliases_with_what_they_stand_for(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/models", headers=gateway.auth())
    assert response.status_code == 200, response.text
    models = {m["id"]: m for m in response.json()["data"]}
    assert models["builtin"]["alias_of"] is None
    assert models["gpt-image-1"]["alias_of"] == "builtin"
    assert models["dall-e-2"]["sizes"] == models["builtin"]["sizes"]


async def test_an_alias_can_name_another_catalog_model(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        models={"builtin": ModelCatalogEntry(), "big": ModelCatalogEntry()},
        model_aliases={"gpt-image-1": "big"},
    )
    async with running_gateway(settings) as gateway:
        await generate(gateway, model="gpt-image-1", size="64x64")
        assert last_spec(gateway).model == "big"
        # Only the configured aliases: the defaults are replaced, not merged.
        body = {"prompt": "a", "model": "dall-e-3"}
        response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "model_not_found"


def test_an_alias_to_a_model_outside_the_catalog_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in the model catalog"):
        Settings(data_dir=tmp_path, model_aliases={"gpt-image-1": "nowhere"})


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [(None, "opaque"), ("auto", "opaque"), ("opaque", "opaque"), ("transparent", "transparent")],
)
async def test_background_is_resolved_and_echoed(
    gateway: Gateway, asked: str | None, resolved: str
) -> None:
    fields = {"size": "64x64"} | ({"background": asked} if asked else {})
    body = await generate(gateway, **fields)
    assert body["background"] == resolved
    assert last_spec(gateway).background == resolved


async def test_a_model_without_flat_backgrounds_refuses_transparent(tmp_path: Path) -> None:
    models = {"builtin": ModelCatalogEntry(), "diffusers": ModelCatalogEntry()}
    settings = Settings(data_dir=tmp_path, models=models)
    async with running_gateway(settings) as gateway:
        body = {"prompt": "a", "model": "diffusers", "background": "transparent"}
        response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "background"
        assert "does not draw transparent backgrounds" in error["message"]
        assert gateway.engine.submitted == []


async def test_usage_details_the_output_tokens(gateway: Gateway) -> None:
    usage = (await generate(gateway, size="64x64", n=2))["usage"]
    assert usage["output_tokens_details"] == {
        "image_tokens": usage["output_tokens"],
        "text_tokens": 0,
    }
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [(None, "medium"), ("auto", "medium"), ("low", "low"), ("standard", "medium"), ("hd", "high")],
)
async def test_quality_is_echoed_resolved(
    gateway: Gateway, asked: str | None, resolved: str
) -> None:
    fields = {"size": "64x64"} | ({"quality": asked} if asked else {})
    assert (await generate(gateway, **fields))["quality"] == resolved


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("complexity", "high", "use 'quality'"),
        ("frame_count", 4, "animated (GIF) output"),
        ("frame_duration_ms", 100, "animated (GIF) output"),
        ("svg", {"model": "x"}, "SVG output"),
        ("output_format", "gif", "png"),
    ],
)
async def test_openai_parameters_no_model_here_honours_are_refused_by_name(
    gateway: Gateway, field: str, value: Any, words: str
) -> None:
    body = {"prompt": "a red circle", field: value}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and words in error["message"]
    assert gateway.engine.submitted == []


async def test_accepted_openai_parameters_that_change_nothing(gateway: Gateway) -> None:
    """``user``, ``safety_identifier`` and the legacy ``style`` are accepted (docs/api.md
    says what each does here)."""
    await generate(gateway, size="64x64", user="u", safety_identifier="hash", style="vivid")


async def test_an_edit_with_markup_is_refused_by_name(gateway: Gateway) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    files = [
        ("image", ("a.png", buffer.getvalue(), "image/png")),
        ("markup", ("m.png", buffer.getvalue(), "image/png")),
    ]
    response = await gateway.client.post(
        "/v1/images/edits", files=files, data={"prompt": "p"}, headers=gateway.auth()
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "markup"
