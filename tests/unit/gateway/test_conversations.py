"""Conversations and turns through the gateway, with the fake engine rendering."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.gateway.conftest import Gateway

CONV = "/v1/conversations"


async def create(gateway: Gateway, title: str | None = "Shapes") -> dict[str, Any]:
    response = await gateway.client.post(CONV, json={"title": title}, headers=gateway.auth())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def turn(gateway: Gateway, conv_id: str, **body: Any) -> Any:
    return await gateway.client.post(f"{CONV}/{conv_id}/turns", json=body, headers=gateway.auth())


async def settle(gateway: Gateway, conv_id: str) -> dict[str, Any]:
    for _ in range(200):
        got = (await gateway.client.get(f"{CONV}/{conv_id}", headers=gateway.auth())).json()
        if all(t["job"]["status"] == "succeeded" for t in got["turns"]):
            return dict(got)
        await asyncio.sleep(0.02)
    raise AssertionError(f"turns did not finish: {got}")


async def test_lineage_of_new_edit_and_branch(gateway: Gateway) -> None:
    conv = await create(gateway)
    first = await turn(gateway, conv["id"], prompt="a red circle", size="64x64")
    assert first.status_code == 202
    assert first.json()["mode"] == "new" and first.json()["parent_turn"] is None
    await settle(gateway, conv["id"])

    second = (await turn(gateway, conv["id"], prompt="make the circle blue")).json()
    assert second["mode"] == "edit" and second["parent_turn"] == 1
    await settle(gateway, conv["id"])
    third = (
        await turn(gateway, conv["id"], prompt="add a square", mode="edit", from_turn=1)
    ).json()
    assert third["index"] == 3 and third["parent_turn"] == 1
    fresh = (await turn(gateway, conv["id"], prompt="a green square", mode="new")).json()
    assert fresh["mode"] == "new" and fresh["parent_turn"] is None

    got = await settle(gateway, conv["id"])
    assert [t["parent_turn"] for t in got["turns"]] == [None, 1, 1, None]
    assert all(t["image"] is not None for t in got["turns"])
    # An edit takes its source's image (and size) from the parent turn's job.
    edit_job = gateway.store.jobs.get(got["turns"][2]["job"]["id"])
    first_job = gateway.store.jobs.get(got["turns"][0]["job"]["id"])
    assert edit_job is not None and first_job is not None
    assert edit_job.spec.source_key == first_job.images[0].blob_key
    assert edit_job.spec.width == 64

    listed = (await gateway.client.get(CONV, headers=gateway.auth())).json()
    assert [c["id"] for c in listed["data"]] == [conv["id"]]
    assert listed["data"][0]["turn_count"] == 4


async def test_rename(gateway: Gateway) -> None:
    conv = await create(gateway, None)
    response = await gateway.client.patch(
        f"{CONV}/{conv['id']}", json={"title": "Circles"}, headers=gateway.auth()
    )
    assert response.status_code == 200 and response.json()["title"] == "Circles"


async def test_other_accounts_get_404_and_no_data(gateway: Gateway) -> None:
    conv = await create(gateway, "secret title")
    await turn(gateway, conv["id"], prompt="a red circle", size="64x64")
    other = gateway.auth(gateway.other_key)
    url = f"{CONV}/{conv['id']}"
    for response in (
        await gateway.client.get(url, headers=other),
        await gateway.client.patch(url, json={"title": "x"}, headers=other),
        await gateway.client.post(f"{url}/turns", json={"prompt": "p"}, headers=other),
    ):
        assert response.status_code == 404
        assert "secret" not in response.text and "red circle" not in response.text
    listed = (await gateway.client.get(CONV, headers=other)).json()
    assert listed["data"] == []
    unknown = await gateway.client.get(f"{CONV}/conv_nope", headers=gateway.auth())
    assert unknown.status_code == 404


async def test_bad_turns_are_4xx(gateway: Gateway) -> None:
    conv = await create(gateway)
    no_image = await turn(gateway, conv["id"], prompt="make it blue", mode="edit")
    assert no_image.status_code == 400 and no_image.json()["error"]["param"] == "mode"
    await turn(gateway, conv["id"], prompt="a red circle", size="64x64")
    missing = await turn(gateway, conv["id"], prompt="p", mode="edit", from_turn=7)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "from_turn"
    both = await turn(gateway, conv["id"], prompt="p", mode="new", from_turn=1)
    assert both.status_code == 400
    empty = await turn(gateway, conv["id"], prompt="  ")
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "prompt"


async def test_editing_a_turn_still_rendering_is_409(gateway: Gateway) -> None:
    gateway.engine.step_delay_s = 0.5
    conv = await create(gateway)
    await turn(gateway, conv["id"], prompt="a red circle", size="64x64")
    response = await turn(gateway, conv["id"], prompt="make it blue", mode="edit")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "source_not_ready"
