"""The official `openai` client's Responses API with the image_generation tool: a
generation, a follow-up that edits it through previous_response_id, a stream with
partial images, and background responses polled and cancelled."""

from __future__ import annotations

import base64
import io
import time

import openai
import pytest
from PIL import Image

from daguerre.models.builtin.checker import check
from daguerre.models.builtin.grammar import parse_caption
from tests.integration.conftest import Stack

PROMPT = "a large red circle in the center, on a white background"
TOOL = {"type": "image_generation", "size": "256x256"}


def client(stack: Stack) -> openai.OpenAI:
    key = stack.new_key()
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=120)


def picture_of(response: object) -> Image.Image:
    calls = [o for o in response.output if o.type == "image_generation_call"]  # type: ignore[attr-defined]
    assert len(calls) == 1 and calls[0].result
    return Image.open(io.BytesIO(base64.b64decode(calls[0].result)))


def assert_shows(image: Image.Image, caption: str) -> None:
    spec = parse_caption(caption)
    assert spec is not None
    assert check(image, spec).ok, check(image, spec).reasons


@pytest.fixture
def api(stack: Stack) -> openai.OpenAI:
    if stack.model != "builtin":
        pytest.skip("the test model neither reads prompts nor edits")
    return client(stack)


def test_a_generation_then_a_follow_up_that_edits_it(api: openai.OpenAI) -> None:
    first = api.responses.create(model="gpt-5", input=PROMPT, tools=[TOOL])  # type: ignore[list-item]
    assert first.status == "completed"
    assert_shows(picture_of(first), PROMPT)
    second = api.responses.create(
        model="gpt-5",
        previous_response_id=first.id,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "make the circle green"}]}
        ],
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert second.previous_response_id == first.id
    assert_shows(picture_of(second), "a large green circle in the center, on a white background")


def test_a_streamed_response_sends_partial_images(api: openai.OpenAI) -> None:
    stream = api.responses.create(
        model="gpt-5",
        input=PROMPT,
        tools=[{**TOOL, "partial_images": 2}],  # type: ignore[list-item]
        stream=True,
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    partials = [e for e in events if e.type == "response.image_generation_call.partial_image"]
    assert len(partials) == 2 and all(p.partial_image_b64 for p in partials)
    assert_shows(picture_of(events[-1].response), PROMPT)  # type: ignore[union-attr]


def test_background_responses_are_polled_and_cancelled(api: openai.OpenAI) -> None:
    queued = api.responses.create(model="gpt-5", input=PROMPT, tools=[TOOL], background=True)  # type: ignore[list-item]
    assert queued.status in ("queued", "in_progress")
    deadline = time.monotonic() + 60
    polled = api.responses.retrieve(queued.id)
    while polled.status != "completed" and time.monotonic() < deadline:
        time.sleep(0.2)
        polled = api.responses.retrieve(queued.id)
    assert polled.status == "completed"
    assert_shows(picture_of(polled), PROMPT)

    other = api.responses.create(model="gpt-5", input=PROMPT, tools=[TOOL], background=True)  # type: ignore[list-item]
    cancelled = api.responses.cancel(other.id)
    assert cancelled.status == "cancelled"
    assert api.responses.retrieve(other.id).status == "cancelled"
