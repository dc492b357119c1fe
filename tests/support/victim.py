"""Account A's data, made through the public API, for suites that probe it as others.

One of everything an account owns: a finished job with two images (under the client's
own job id), a generation answered with signed image links, a conversation with a new
turn and an edit turn, and an edit of an uploaded image. Every id is kept, with the
texts that only A wrote, so a probe can tell whether an answer reveals any of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from daguerre.store.tables import AccountRow, ApiKeyRow, JobRow
from tests.support.engine import png_bytes
from tests.support.inprocess import InProcess

SECRET_PROMPT = "victim-prompt-3f9c1d: only account A wrote this"
SECRET_TITLE = "victim-title-8b2e47"
CLIENT_JOB_ID = "victim-client-id-1"


@dataclass(frozen=True)
class SignedLink:
    image_id: str
    exp: int
    sig: str


@dataclass
class Victim:
    account_id: str
    job_id: str  # the native job, under the client's own id
    job_ids: list[str] = field(default_factory=list)  # every job A has, as A names it
    row_ids: list[str] = field(default_factory=list)  # internal ids of client-named jobs
    image_ids: list[str] = field(default_factory=list)
    conversation_id: str = ""
    turn_ids: list[str] = field(default_factory=list)
    turn_numbers: list[str] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)
    response_ids: list[str] = field(default_factory=list)
    more_conversation_ids: list[str] = field(default_factory=list)  # a response's thread
    link: SignedLink | None = None
    webhook_secrets: list[str] = field(default_factory=list)

    def ids(self) -> set[str]:
        """Everything that names A's data."""
        return {
            self.account_id,
            *self.job_ids,
            *self.row_ids,
            *self.image_ids,
            self.conversation_id,
            *self.turn_ids,
            *self.key_ids,
            *self.file_ids,
            *self.response_ids,
            *self.more_conversation_ids,
        }

    def secrets(self) -> set[str]:
        """What only A's own answers may contain, whatever was asked."""
        return {SECRET_PROMPT, SECRET_TITLE, self.account_id, *self.webhook_secrets}


async def wait_job(
    client: httpx.AsyncClient, job_id: str, headers: dict[str, str], timeout_s: float = 20
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            assert body["status"] == "succeeded", body
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} did not finish: {body}")
        await asyncio.sleep(0.02)


def _link(url: str) -> SignedLink:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return SignedLink(parts.path.rsplit("/", 1)[1], int(query["exp"][0]), query["sig"][0])


async def seed(client: httpx.AsyncClient, target: InProcess) -> Victim:
    a = target.bearer(target.key_a)

    made = await client.post(
        "/v1/jobs", json={"prompt": SECRET_PROMPT, "n": 2, "id": CLIENT_JOB_ID}, headers=a
    )
    assert made.status_code == 202, made.text
    job = await wait_job(client, made.json()["id"], a)
    victim = Victim(target.account_a, job["id"], job_ids=[job["id"]])
    victim.image_ids += [image["id"] for image in job["images"]]

    generated = await client.post(
        "/v1/images/generations",
        json={"prompt": SECRET_PROMPT, "response_format": "url"},
        headers=a,
    )
    assert generated.status_code == 200, generated.text
    victim.link = _link(generated.json()["data"][0]["url"])
    victim.image_ids.append(victim.link.image_id)

    conv = await client.post("/v1/conversations", json={"title": SECRET_TITLE}, headers=a)
    assert conv.status_code == 201, conv.text
    victim.conversation_id = conv.json()["id"]
    for mode in ("new", "edit"):
        turn = await client.post(
            f"/v1/conversations/{victim.conversation_id}/turns",
            json={"prompt": SECRET_PROMPT, "mode": mode},
            headers=a,
        )
        assert turn.status_code == 202, turn.text
        body = turn.json()
        victim.turn_ids.append(body["id"])
        victim.turn_numbers.append(str(body["index"]))
        done = await wait_job(client, body["job"]["id"], a)
        victim.job_ids.append(done["id"])
        victim.image_ids += [image["id"] for image in done["images"]]

    edit = await client.post(
        "/v1/images/edits",
        files={"image": ("source.png", png_bytes(64), "image/png")},
        data={"prompt": SECRET_PROMPT, "response_format": "url"},
        headers=a,
    )
    assert edit.status_code == 200, edit.text
    victim.image_ids.append(_link(edit.json()["data"][0]["url"]).image_id)

    uploaded = await client.post(
        "/v1/files",
        files={"file": ("secret.png", png_bytes(64), "image/png")},
        data={"purpose": "vision"},
        headers=a,
    )
    assert uploaded.status_code == 200, uploaded.text
    victim.file_ids.append(uploaded.json()["id"])

    answered = await client.post(
        "/v1/responses",
        json={"input": SECRET_PROMPT, "tools": [{"type": "image_generation", "size": "64x64"}]},
        headers=a,
    )
    assert answered.status_code == 200, answered.text
    victim.response_ids.append(answered.json()["id"])
    victim.more_conversation_ids.append(answered.json()["conversation"]["id"])

    # A's webhook signing secret, made now if the store makes them on demand.
    ensure = getattr(target.store.accounts, "ensure_webhook_secret", None)
    if ensure is not None:
        ensure(target.account_a)
    with target.store.db.connect() as conn:
        rows = conn.execute(select(ApiKeyRow.id).where(ApiKeyRow.account_id == target.account_a))
        victim.key_ids = [row[0] for row in rows]
        # The generation's and the edit's jobs too, which their answers do not name. A
        # job made under the client's own id is known by that id alone; its row's id
        # is internal, but is A's all the same.
        jobs = JobRow.__table__
        client_id = jobs.c.get("client_id", jobs.c.id)  # before ids were per account: the id
        named = [
            (str(r[0]), r[1])
            for r in conn.execute(
                select(jobs.c.id, client_id).where(jobs.c.account_id == target.account_a)
            )
        ]
        victim.job_ids = sorted({*victim.job_ids, *(client or row for row, client in named)})
        victim.row_ids = sorted(row for row, client in named if client and client != row)
        accounts = AccountRow.__table__
        secrets = conn.execute(select(accounts).where(accounts.c.id == target.account_a))
        for row in secrets.mappings():
            for name in ("webhook_secret", "webhook_secret_previous"):
                if row.get(name):
                    victim.webhook_secrets.append(str(row[name]))
    return victim
