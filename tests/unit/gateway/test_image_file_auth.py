"""GET /v1/images/files/{id}: who may see it is settled before the id reaches the
database (a signature is an HMAC of the id, cheap; a key is the owner's). Before, the
image row was read first, so any id, NUL included, reached the database unauthenticated."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.gateway.conftest import Gateway
from tests.unit.gateway.test_errors import error_of


@pytest.fixture
def lookups(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = gateway.store.jobs.get_image

    def spy(image_id: str) -> Any:
        seen.append(image_id)
        return real(image_id)

    monkeypatch.setattr(gateway.store.jobs, "get_image", spy)
    return seen


async def test_no_key_and_no_signature_is_401_before_any_lookup(
    gateway: Gateway, lookups: list[str]
) -> None:
    for path in ("/v1/images/files/img_abc", "/v1/images/files/img_abc?exp=99999999999"):
        error_of(await gateway.client.get(path), 401)
    assert lookups == []


@pytest.mark.parametrize("sig", ["0" * 64, "nothex", "%C3%A9"])
async def test_bad_signature_is_403_before_any_lookup(
    gateway: Gateway, lookups: list[str], sig: str
) -> None:
    response = await gateway.client.get(f"/v1/images/files/img_abc?exp=99999999999&sig={sig}")
    assert error_of(response, 403)["code"] == "bad_signature"
    assert lookups == []


async def test_owner_key_and_signed_link_still_work(gateway: Gateway, lookups: list[str]) -> None:
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    made = await gateway.client.post("/v1/images/generations", json=body, headers=gateway.auth())
    url = made.json()["data"][0]["url"].removeprefix("http://gw")
    assert (await gateway.client.get(url)).status_code == 200  # signed, no key
    path = url.split("?")[0]
    assert (await gateway.client.get(path, headers=gateway.auth())).status_code == 200
    theirs = gateway.auth(gateway.other_key)
    error_of(await gateway.client.get(path, headers=theirs), 404)
    # A signature with a key that is not the owner's: the link is what counts.
    assert (await gateway.client.get(url, headers=theirs)).status_code == 200
