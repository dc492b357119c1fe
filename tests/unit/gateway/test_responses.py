"""The Responses API's image_generation tool, mapped onto conversations (fake engine)."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from daguerre.config import Settings
from tests.unit.gateway.conftest import Gateway, running_gateway
from tests.unit.gateway.test_streaming import parse_sse

RESPONSES = "/v1/responses"
TOOL = {"type": "image_generation", "size": "64x64"}
TEXT = {"type": "input_text", "text": "make it green"}


async def create(gateway: Gateway, key: str | None = None, **body: Any) -> Any:
    body = {"model": "gpt-5", "input": "a red circle", "tools": [TOOL], **body}
    return await gateway.client.post(RESPONSES, json=body, headers=gateway.auth(key))


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_response_draws_the_image_and_starts_a_conversation(gateway: Gateway) -> None:
    body = ok(await create(gateway))
    assert body["object"] == "response" and body["id"].startswith("resp_")
    assert body["status"] == "completed"
    call, message = body["output"]
    assert call["type"] == "image_generation_call" and call["status"] == "completed"
    assert (call["action"], call["size"], call["background"]) == ("generate", "64x64", "opaque")
    image = Image.open(io.BytesIO(base64.b64decode(call["result"])))
    assert image.format == "PNG"
    assert message["type"] == "message" and message["content"][0]["type"] == "output_text"
    conv = body["conversation"]["id"]
    listed = await gateway.client.get(f"/v1/conversations/{conv}", headers=gateway.auth())
    assert [t["prompt"] for t in listed.json()["turns"]] == ["a red circle"]


async def test_a_follow_up_edits_the_previous_image_in_the_same_thread(gateway: Gateway) -> None:
    first = ok(await create(gateway))
    message = {"role": "user", "content": [{"type": "input_text", "text": "make it green"}]}
    second = ok(await create(gateway, input=[message], previous_response_id=first["id"]))
    assert second["previous_response_id"] == first["id"]
    assert second["output"][0]["action"] == "edit"
    assert second["conversation"] == first["conversation"]
    job = gateway.store.jobs.get(gateway.engine.submitted[-1][0])
    assert (
        job is not None and job.spec.source_key is not None and job.spec.prompt == "make it green"
    )
    turns = await gateway.client.get(
        f"/v1/conversations/{first['conversation']['id']}", headers=gateway.auth()
    )
    assert [t["mode"] for t in turns.json()["turns"]] == ["new", "edit"]


async def test_background_answers_at_once_then_polls_and_cancels(gateway: Gateway) -> None:
    gateway.engine.step_delay_s = 0.2
    body = ok(await create(gateway, background=True))
    assert body["status"] in ("queued", "in_progress") and body["background"] is True
    assert body["output"][0]["result"] is None
    cancelled = ok(
        await gateway.client.post(f"{RESPONSES}/{body['id']}/cancel", headers=gateway.auth())
    )
    assert cancelled["status"] == "cancelled"
    gateway.engine.step_delay_s = 0.01
    later = ok(await create(gateway, background=True))
    for _ in range(100):
        polled = ok(await gateway.client.get(f"{RESPONSES}/{later['id']}", headers=gateway.auth()))
        if polled["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert polled["status"] == "completed" and polled["output"][0]["result"]


async def test_a_stream_sends_openais_events_in_order(gateway: Gateway) -> None:
    tool = {**TOOL, "partial_images": 1}
    response = await create(gateway, stream=True, tools=[tool])
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.output_item.done",
        "response.completed",
    ]
    numbers = [data["sequence_number"] for _, data in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    partial = events[5][1]
    assert partial["partial_image_index"] == 0 and partial["partial_image_b64"]
    assert events[-1][1]["response"]["output"][0]["result"]


async def test_another_accounts_response_does_not_exist(gateway: Gateway) -> None:
    body = ok(await create(gateway))
    other = gateway.auth(gateway.other_key)
    for method, path in (("GET", ""), ("POST", "/cancel")):
        response = await gateway.client.request(
            method, f"{RESPONSES}/{body['id']}{path}", headers=other
        )
        assert response.status_code == 404, response.text
    follow = await create(gateway, gateway.other_key, previous_response_id=body["id"])
    assert follow.status_code == 400
    assert follow.json()["error"]["param"] == "previous_response_id"


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools", "image_generation"),
        (
            {
                "input": [
                    {"role": "user", "content": [TEXT, {"type": "input_image", "image_url": "x"}]}
                ]
            },
            "input",
            "must be a data URL",
        ),
        (
            {"input": [{"type": "image_generation_call", "id": "ig_nope"}, {"content": [TEXT]}]},
            "input",
            "No image_generation_call",
        ),
        ({"tools": [{**TOOL, "input_image_mask": {"image_url": "x"}}]}, "tools", "input_image"),
        ({"tools": [{**TOOL, "action": "edit"}]}, "tools", "needs previous_response_id"),
        ({"tools": [{**TOOL, "size": "13x7"}]}, "size", "Supported sizes"),
        ({"input": "   "}, "input", "no text"),
        ({"tools": [{**TOOL, "partial_images": 9}]}, "partial_images", "less than or equal"),
        (
            {"input": [{"content": [TEXT, {"type": "input_image", "image_url": {"u": 1}}]}]},
            "image_url",
            "string",
        ),
        ({"tools": [{**TOOL, "input_image_mask": "x"}]}, "tools", "input_image"),
        ({"input": [{"content": ["loose", 3, None]}]}, "input", "no text"),
    ],
)
async def test_bad_requests_are_400s_naming_what_to_fix(
    gateway: Gateway, fields: dict[str, Any], param: str, words: str
) -> None:
    response = await create(gateway, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert gateway.engine.submitted == []


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_an_input_image_is_edited_with_its_mask(gateway: Gateway) -> None:
    picture, mask = Image.new("RGB", (64, 64), "white"), Image.new("RGBA", (64, 64))
    content = [
        {"type": "input_text", "text": "add a red circle"},
        {"type": "input_image", "image_url": data_url(picture)},
    ]
    tool = {**TOOL, "input_image_mask": {"image_url": data_url(mask)}}
    body = ok(await create(gateway, input=[{"role": "user", "content": content}], tools=[tool]))
    assert body["output"][0]["action"] == "edit" and body["status"] == "completed"
    job = gateway.store.jobs.get(gateway.engine.submitted[-1][0])
    assert job is not None and job.spec.source_key and job.spec.mask_key
    assert job.spec.prompt == "add a red circle"
    turns = await gateway.client.get(
        f"/v1/conversations/{body['conversation']['id']}", headers=gateway.auth()
    )
    assert [t["mode"] for t in turns.json()["turns"]] == ["edit"]


async def test_an_earlier_call_in_the_input_branches_from_its_image(gateway: Gateway) -> None:
    first = ok(await create(gateway))
    second = ok(await create(gateway, input="make it blue", previous_response_id=first["id"]))
    # Back to the first picture: the third edits it, not the second.
    call = {"type": "image_generation_call", "id": first["output"][0]["id"]}
    message = {"role": "user", "content": [{"type": "input_text", "text": "make it green"}]}
    third = ok(await create(gateway, input=[call, message]))
    assert third["previous_response_id"] == first["id"] != second["id"]
    assert third["conversation"] == first["conversation"]
    # Another account cannot branch from it.
    other = await create(gateway, gateway.other_key, input=[call, message])
    assert other.status_code == 400 and other.json()["error"]["param"] == "input"


async def test_a_refused_first_response_leaves_no_empty_thread(gateway: Gateway) -> None:
    response = await create(gateway, input="a large red circle, nsfw")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "moderation_blocked"
    listed = await gateway.client.get("/v1/conversations", headers=gateway.auth())
    assert listed.json()["data"] == []


async def test_a_wait_past_the_sync_limit_answers_in_progress(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sync_wait_timeout_s=0.05)
    async with running_gateway(settings) as gateway:
        gateway.engine.step_delay_s = 0.1
        body = ok(await create(gateway))
        assert body["status"] in ("queued", "in_progress") and body["output"][0]["result"] is None
        for _ in range(100):
            polled = ok(
                await gateway.client.get(f"{RESPONSES}/{body['id']}", headers=gateway.auth())
            )
            if polled["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert polled["status"] == "completed"
