"""The Files API, as far as edits need it: an account's own images, by id."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_edits import EDITS, image_bytes

FILES = "/v1/files"


def stored_blobs(gateway: Gateway) -> list[str]:
    """The blobs of alice's files (the account behind ``gateway.key``)."""
    alice = gateway.store.accounts.find_account("alice")
    assert alice is not None
    return gateway.store.blobs.keys(f"files/{alice.id}")


async def upload(
    gateway: Gateway, data: bytes | None = None, purpose: str = "vision", key: str | None = None
) -> Any:
    files = {"file": ("circle.png", data if data is not None else image_bytes(), "image/png")}
    return await gateway.client.post(
        FILES, files=files, data={"purpose": purpose}, headers=gateway.auth(key)
    )


async def test_a_file_is_uploaded_listed_read_and_deleted(gateway: Gateway) -> None:
    data = image_bytes()
    made = await upload(gateway, data)
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["object"] == "file" and body["id"].startswith("file-")
    assert (body["bytes"], body["filename"], body["purpose"]) == (len(data), "circle.png", "vision")
    file_id = body["id"]
    assert len(stored_blobs(gateway)) == 1
    got = await gateway.client.get(f"{FILES}/{file_id}", headers=gateway.auth())
    assert got.status_code == 200 and got.json() == body
    listed = await gateway.client.get(FILES, headers=gateway.auth())
    assert [f["id"] for f in listed.json()["data"]] == [file_id]
    content = await gateway.client.get(f"{FILES}/{file_id}/content", headers=gateway.auth())
    assert content.content == data and content.headers["content-type"] == "image/png"

    gone = await gateway.client.delete(f"{FILES}/{file_id}", headers=gateway.auth())
    assert gone.json() == {"id": file_id, "object": "file", "deleted": True}
    again = await gateway.client.get(f"{FILES}/{file_id}", headers=gateway.auth())
    assert again.status_code == 404
    assert stored_blobs(gateway) == []


async def test_another_accounts_file_is_a_404_everywhere(gateway: Gateway) -> None:
    file_id = (await upload(gateway)).json()["id"]
    other = gateway.auth(gateway.other_key)
    for method, path in (
        ("GET", f"{FILES}/{file_id}"),
        ("GET", f"{FILES}/{file_id}/content"),
        ("DELETE", f"{FILES}/{file_id}"),
    ):
        response = await gateway.client.request(method, path, headers=other)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await gateway.client.get(FILES, headers=other)).json()["data"] == []
    # Nor can an edit of the other account name it.
    body = {"prompt": "make the circle green", "images": [{"file_id": file_id}]}
    response = await gateway.client.post(EDITS, json=body, headers=other)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "file_not_found"
    # The owner's file is still there.
    assert (await gateway.client.get(f"{FILES}/{file_id}", headers=gateway.auth())).is_success


async def test_an_edit_names_an_uploaded_file(gateway: Gateway) -> None:
    file_id = (await upload(gateway)).json()["id"]
    body = {"prompt": "make the circle green", "images": [{"file_id": file_id}]}
    response = await gateway.client.post(EDITS, json=body, headers=gateway.auth())
    assert response.status_code == 200, response.text
    job = gateway.store.jobs.get(gateway.engine.submitted[-1][0])
    assert job is not None and job.spec.source_key is not None


@pytest.mark.parametrize(
    ("data", "purpose", "param", "words"),
    [
        (b"hello, not pixels", "vision", "file", "not a PNG, JPEG or WebP"),
        (None, "fine-tune", "purpose", "vision, user_data"),
    ],
)
async def test_a_bad_upload_is_a_400_naming_the_field(
    gateway: Gateway, data: bytes | None, purpose: str, param: str, words: str
) -> None:
    response = await upload(gateway, data, purpose)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert stored_blobs(gateway) == []


async def test_the_list_pages_newest_first(gateway: Gateway) -> None:
    ids = [(await upload(gateway)).json()["id"] for _ in range(3)]
    first = (await gateway.client.get(f"{FILES}?limit=2", headers=gateway.auth())).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    rest = await gateway.client.get(
        f"{FILES}?limit=2&after={first['last_id']}", headers=gateway.auth()
    )
    seen = [f["id"] for f in first["data"]] + [f["id"] for f in rest.json()["data"]]
    assert sorted(seen) == sorted(ids) and rest.json()["has_more"] is False
