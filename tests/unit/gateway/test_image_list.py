"""GET /v1/images: the caller's own images, newest first, a page at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from daguerre.config import Settings
from tests.unit.gateway.conftest import Gateway, running_gateway

LIST = "/v1/images"


async def generate(gateway: Gateway, prompt: str, n: int = 1, key: str | None = None) -> list[str]:
    """A finished generation's image ids, in order."""
    body = {"prompt": prompt, "n": n, "size": "64x64", "response_format": "url"}
    response = await gateway.client.post(
        "/v1/images/generations", json=body, headers=gateway.auth(key)
    )
    assert response.status_code == 200, response.text
    return [urlparse(item["url"]).path.rsplit("/", 1)[1] for item in response.json()["data"]]


async def listed(gateway: Gateway, key: str | None = None, **params: Any) -> dict[str, Any]:
    response = await gateway.client.get(LIST, params=params, headers=gateway.auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_new_account_has_an_empty_list(gateway: Gateway) -> None:
    assert await listed(gateway) == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


async def test_newest_first_with_what_the_gallery_shows(gateway: Gateway) -> None:
    first = await generate(gateway, "a red circle", n=2)
    second = await generate(gateway, "a blue square")
    page = await listed(gateway)
    # The newest request first; the images of one request in their order.
    assert [item["id"] for item in page["data"]] == second + first
    assert (page["first_id"], page["last_id"], page["has_more"]) == (second[0], first[1], False)
    item = page["data"][0]
    assert set(item) == {
        "id", "object", "url", "media_type", "width", "height", "created_at", "job_id",
        "prompt", "revised_prompt", "conversation_id",
    }  # fmt: skip
    assert item["object"] == "image" and item["media_type"] == "image/png"
    assert (item["width"], item["height"]) == (64, 64)
    assert item["prompt"] == "a blue square" and item["conversation_id"] is None
    assert isinstance(item["created_at"], int)
    job = await gateway.client.get(f"/v1/jobs/{item['job_id']}", headers=gateway.auth())
    assert job.status_code == 200 and job.json()["images"][0]["id"] == item["id"]
    # The url is signed: it opens the image without a key.
    image = await gateway.client.get(item["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


async def test_job_id_is_the_one_its_owner_chose(gateway: Gateway) -> None:
    body = {"prompt": "mine", "id": "my-own-id", "size": "64x64"}
    created = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
    assert created.status_code == 202, created.text
    for _ in range(500):
        job = await gateway.client.get("/v1/jobs/my-own-id", headers=gateway.auth())
        if job.json()["status"] == "succeeded":
            break
        await asyncio.sleep(0.01)
    (item,) = (await listed(gateway))["data"]
    assert item["job_id"] == "my-own-id"


async def test_pages_walk_every_image_once(gateway: Gateway) -> None:
    made: list[str] = []
    for prompt in ("one", "two", "three"):
        made = await generate(gateway, prompt, n=2) + made
    seen: list[str] = []
    after = None
    for expected_more in (True, True, True, False):  # pages of 1, 2, 2 and 1
        params: dict[str, Any] = {"limit": 1 if not seen else 2, "after": after}
        page = await listed(gateway, **{k: v for k, v in params.items() if v is not None})
        assert page["has_more"] is expected_more, page
        seen += [item["id"] for item in page["data"]]
        after = page["last_id"]
        if not expected_more:
            break
    assert seen == made
    # A page past the last is empty, not an error.
    assert (await listed(gateway, after=made[-1]))["data"] == []


async def test_limit_defaults_to_20_and_stays_within_1_to_100(gateway: Gateway) -> None:
    for prompt in ("a", "b", "c"):
        await generate(gateway, prompt, n=8)
    page = await listed(gateway)
    assert len(page["data"]) == 20 and page["has_more"] is True
    assert len((await listed(gateway, limit=100))["data"]) == 24
    for bad in (0, 101, "many"):
        response = await gateway.client.get(LIST, params={"limit": bad}, headers=gateway.auth())
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "limit"


async def test_only_the_callers_images_and_no_cursor_into_anothers(gateway: Gateway) -> None:
    mine = await generate(gateway, "alice's secret picture", n=2)
    theirs = await generate(gateway, "bob's", key=gateway.other_key)
    bob = await listed(gateway, gateway.other_key)
    assert [item["id"] for item in bob["data"]] == theirs
    assert "alice's secret picture" not in str(bob)
    # Alice's image as bob's cursor is refused exactly like an id that does not exist.
    answers = []
    for after in (mine[0], "img_does_not_exist"):
        response = await gateway.client.get(
            LIST, params={"after": after}, headers=gateway.auth(gateway.other_key)
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        answers.append((error["code"], error["param"], error["message"].replace(after, "ID")))
    assert answers[0] == answers[1] and answers[0][1] == "after"
    assert (await gateway.client.get(LIST)).status_code == 401


async def test_a_turns_image_names_its_conversation(gateway: Gateway) -> None:
    conversation = await gateway.client.post("/v1/conversations", headers=gateway.auth())
    conversation_id = conversation.json()["id"]
    turn = await gateway.client.post(
        f"/v1/conversations/{conversation_id}/turns",
        json={"prompt": "a green triangle", "size": "64x64"},
        headers=gateway.auth(),
    )
    assert turn.status_code == 202, turn.text
    for _ in range(500):
        page = await listed(gateway)
        if page["data"]:
            break
        await asyncio.sleep(0.01)
    (item,) = page["data"]
    assert item["conversation_id"] == conversation_id
    assert item["prompt"] == "a green triangle"
    assert item["job_id"] == turn.json()["job"]["id"]


async def test_listing_counts_against_the_read_limit(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, read_rate_limit="2/minute")
    async with running_gateway(settings) as gateway:
        for _ in range(2):
            assert (await gateway.client.get(LIST, headers=gateway.auth())).status_code == 200
        refused = await gateway.client.get(LIST, headers=gateway.auth())
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1


async def test_the_contract_describes_the_list(gateway: Gateway) -> None:
    document = (await gateway.client.get("/openapi.json")).json()
    operation = document["paths"][LIST]["get"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "429"}
    assert "422" not in operation["responses"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ImageList"}
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"limit", "after"} <= set(params)
    limit = params["limit"]["schema"]
    assert (limit["default"], limit["minimum"], limit["maximum"]) == (20, 1, 100)
    item = document["components"]["schemas"]["ImageListed"]
    assert {"id", "url", "media_type", "width", "height", "created_at", "job_id"} <= set(
        item["required"]
    )
