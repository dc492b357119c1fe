"""``revised_prompt`` end to end: the worker stores the model's reading of each prompt,
and the Images API and the image list give it back (the official client reads it)."""

from __future__ import annotations

import base64
import io

import httpx
import openai

from tests.integration.conftest import Stack

PROMPT = "a large red circle in the center, on a white background"


def test_generations_and_edits_say_what_the_model_understood(stack: Stack) -> None:
    key = stack.new_key()
    api = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=120)
    made = api.images.generate(model=stack.model, prompt=PROMPT, size="128x128")
    assert made.data is not None and made.data[0].b64_json is not None
    if stack.model != "builtin":  # the test model neither edits nor reads prompts
        assert made.data[0].revised_prompt is None
        return
    png = base64.b64decode(made.data[0].b64_json)
    edited = api.images.edit(
        model=stack.model, image=("circle.png", io.BytesIO(png)), prompt="make the circle green"
    )
    assert edited.data is not None
    readings = [made.data[0].revised_prompt, edited.data[0].revised_prompt]
    assert all(isinstance(r, str) and r.strip() for r in readings), readings
    # The same text is stored with each image: the list gives it back, newest first.
    listed = httpx.get(f"{stack.url}/v1/images", headers={"Authorization": f"Bearer {key}"})
    assert [i["revised_prompt"] for i in listed.json()["data"]] == readings[::-1]
