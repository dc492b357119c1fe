"""``revised_prompt``, what the model understood the prompt as, in every answer that
describes an image: generations, edits, jobs, conversations and the image list."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_conversations import create, settle, turn
from tests.unit.gateway.test_edits import image_bytes


def understood(prompt: str) -> str:
    return f"understood: {prompt}"


@pytest.fixture
def reading(gateway: Gateway) -> Gateway:
    gateway.engine.read_prompt = understood
    return gateway


async def job_of(gateway: Gateway) -> dict[str, Any]:
    job_id = gateway.engine.submitted[-1][0]
    job = gateway.store.jobs.get(job_id)
    assert job is not None
    response = await gateway.client.get(f"/v1/jobs/{job.public_id}", headers=gateway.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
async def test_generations_carry_it_per_image(reading: Gateway, response_format: str) -> None:
    body = {"prompt": "a red circle", "n": 2, "size": "64x64", "response_format": response_format}
    response = await reading.client.post(
        "/v1/images/generations", json=body, headers=reading.auth()
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["revised_prompt"] for item in data] == [understood("a red circle")] * 2
    assert all(response_format in item for item in data)
    job = await job_of(reading)
    assert [i["revised_prompt"] for i in job["images"]] == [understood("a red circle")] * 2


async def test_edits_carry_it(reading: Gateway) -> None:
    files = [("image", ("a.png", image_bytes(), "image/png"))]
    fields = {"prompt": "make the circle green"}
    response = await reading.client.post(
        "/v1/images/edits", files=files, data=fields, headers=reading.auth()
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert item["revised_prompt"] == understood("make the circle green")


async def test_conversation_turns_and_the_image_list_carry_it(reading: Gateway) -> None:
    conv = await create(reading)
    assert (await turn(reading, conv["id"], prompt="a red circle", size="64x64")).status_code == 202
    await settle(reading, conv["id"])
    assert (await turn(reading, conv["id"], prompt="make the circle green")).status_code == 202
    got = await settle(reading, conv["id"])
    prompts = [understood("a red circle"), understood("make the circle green")]
    assert [t["image"]["revised_prompt"] for t in got["turns"]] == prompts
    assert [t["job"]["images"][0]["revised_prompt"] for t in got["turns"]] == prompts
    listed = (await reading.client.get("/v1/images", headers=reading.auth())).json()["data"]
    assert [i["revised_prompt"] for i in listed] == prompts[::-1]  # newest first


async def test_absent_where_the_model_gives_none(gateway: Gateway) -> None:
    body = {"prompt": "a red circle", "size": "64x64"}
    response = await gateway.client.post(
        "/v1/images/generations", json=body, headers=gateway.auth()
    )
    (item,) = response.json()["data"]
    assert "revised_prompt" not in item  # OpenAI's answers leave the field out too
    job = await job_of(gateway)
    assert job["images"][0]["revised_prompt"] is None


async def test_openapi_documents_it(gateway: Gateway) -> None:
    schemas = (await gateway.client.get("/openapi.json")).json()["components"]["schemas"]
    for name in ("ImageData", "ImagePublic", "TurnImage", "ImageListed"):
        field = schemas[name]["properties"]["revised_prompt"]
        assert "understood" in field["description"], name
