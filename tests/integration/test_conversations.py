"""A conversation through the full stack: generate, edit, then branch from turn 1."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.integration.conftest import Stack


def wait_turns(http: httpx.Client, conv_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conv = http.get(f"/v1/conversations/{conv_id}").json()
        statuses = {t["job"]["status"] for t in conv["turns"]}
        assert not statuses & {"failed", "cancelled"}, conv
        if statuses == {"succeeded"}:
            return dict(conv)
        time.sleep(0.1)
    raise AssertionError(f"turns of {conv_id} did not finish")


def test_three_turns_make_the_expected_lineage(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.new_key()}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as http:
        conv = http.post("/v1/conversations", json={"title": "shapes"}).json()
        turns_url = f"/v1/conversations/{conv['id']}/turns"
        first = http.post(
            turns_url, json={"prompt": "a large red circle in the center", "size": "128x128"}
        )
        assert first.status_code == 202, first.text
        wait_turns(http, conv["id"])
        second = http.post(turns_url, json={"prompt": "make the circle blue"}).json()
        assert second["mode"] == "edit" and second["parent_turn"] == 1
        wait_turns(http, conv["id"])
        third = http.post(
            turns_url, json={"prompt": "make the circle green", "mode": "edit", "from_turn": 1}
        ).json()
        assert third["parent_turn"] == 1
        done = wait_turns(http, conv["id"])

        turns = done["turns"]
        assert [(t["index"], t["mode"], t["parent_turn"]) for t in turns] == [
            (1, "new", None),
            (2, "edit", 1),
            (3, "edit", 1),
        ]
        ids = [t["image"]["id"] for t in turns]
        assert len(set(ids)) == 3
        for turn in turns:
            picture = http.get(turn["image"]["url"])
            assert picture.status_code == 200
            assert turn["image"]["width"] == 128  # an edit keeps its source's size

        # Both edits reused the stored encoding of turn 1's image, not its pixels alone.
        first_job = stack.store.jobs.get(turns[0]["job"]["id"])
        assert first_job is not None
        for turn in turns[1:]:
            job = stack.store.jobs.get(turn["job"]["id"])
            assert job is not None
            assert job.spec.source_key == first_job.images[0].blob_key
            if stack.model == "builtin":
                assert job.spec.source_encoding_key == first_job.images[0].encoding_key
                assert job.spec.source_encoding_key is not None

        # Another account sees none of it.
        other = {"Authorization": f"Bearer {stack.new_key()}"}
        assert http.get(f"/v1/conversations/{conv['id']}", headers=other).status_code == 404
        assert http.get(f"/v1/images/files/{ids[0]}", headers=other).status_code == 404
        assert http.get("/v1/conversations", headers=other).json()["data"] == []
