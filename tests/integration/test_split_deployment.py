"""The scale-out deployment on one machine (issue 16): PostgreSQL, Redis, an S3-compatible
object store, Temporal, two gateways and two workers, every process with a data dir of
its own, so that no blob folder is shared and every image, upload, preview, partial,
encoding and checkpoint must go through the object store.

Through both gateways it serves generations (b64_json, and URLs signed by one gateway
and fetched from the other), streams, edits (an upload, and an image made earlier) and a
conversation, with no 5xx anywhere; the work lands on both workers (Temporal's history
says which worker's render counted for each job).
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from sqlalchemy import select
from temporalio.client import Client

from daguerre.store import Store, open_store
from daguerre.store.tables import JobRow
from tests.integration.conftest import unique_tag
from tests.support.postgres import throwaway_database
from tests.support.redis_server import redis_server
from tests.support.s3_server import s3_server
from tests.support.stack import Proc, StackConfig, free_port, start_gateway, start_worker
from tests.support.temporal_history import pollers, render_results

SIZE = "128x128"


@dataclass
class Split:
    urls: list[str]  # the two gateways
    store: Store
    key: str
    tag: str
    temporal_address: str
    workers: list[Proc]
    gateways: list[Proc]
    data_dirs: list[Path]
    server_errors: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        """Every response any client of this test gets: a 5xx is a failure, wherever."""
        if response.status_code >= 500:
            self.server_errors.append(f"{response.request.method} {response.request.url}")

    def http(self, gateway: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.urls[gateway],
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
            event_hooks={"response": [self.record]},
        )

    def api(self, gateway: int) -> openai.OpenAI:
        hooked = httpx.Client(timeout=120, event_hooks={"response": [self.record]})
        return openai.OpenAI(
            base_url=f"{self.urls[gateway]}/v1", api_key=self.key, max_retries=0, http_client=hooked
        )

    def on_other_gateway(self, url: str, gateway: int) -> str:
        """A link one gateway handed out, fetched from the other one."""
        assert url.startswith(self.urls[gateway]), url
        return self.urls[1 - gateway] + url.removeprefix(self.urls[gateway])


def config(base: Path, name: str, tag: str, temporal: str, shared: dict[str, Any]) -> StackConfig:
    """One process's settings: shared services, a data dir of its own."""
    folder = base / name
    folder.mkdir()
    return StackConfig(folder, tag, temporal, "fake", dict(shared), step_delay_s=0.02)


async def both_polling(temporal_address: str, queue: str, workers: list[Proc]) -> None:
    client = await Client.connect(temporal_address)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        polling = await pollers(client, queue)
        if all(any(i.startswith(f"{w.pid}@") for i in polling) for w in workers):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"both workers were not polling {queue} in 60 s")


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, temporal_address: str) -> Iterator[Split]:
    base = tmp_path_factory.mktemp("split")
    with (
        throwaway_database() as database_url,
        redis_server(base / "redis") as redis,
        s3_server(base / "s3") as s3,
    ):
        tag = unique_tag()
        shared = {
            "database_url": database_url,
            "redis_url": redis.url,
            "url_signing_secret": secrets.token_hex(32),
            "product_pools": {"api": "api", "chat": "api"},
            **s3.settings_values("split"),
        }
        store = open_store(config(base, "test", tag, temporal_address, shared).settings())
        account = store.accounts.create_account("split", "pro", "api")
        procs: list[Proc] = []
        try:
            workers = []
            for name in ("w1", "w2"):
                worker = config(base, name, tag, temporal_address, shared)
                workers.append(start_worker(worker, "api", base, name))
                procs.append(workers[-1])
            ports = [free_port(), free_port()]
            gateways = []
            for i, port in enumerate(ports, 1):
                gw = config(base, f"gw{i}", tag, temporal_address, shared)
                gateways.append(start_gateway(gw, port, gw.data_dir))
                procs.append(gateways[-1])
            asyncio.run(both_polling(temporal_address, f"{tag}-api", workers))
            yield Split(
                urls=[f"http://127.0.0.1:{p}" for p in ports],
                store=store,
                key=store.accounts.create_api_key(account.id),
                tag=tag,
                temporal_address=temporal_address,
                workers=workers,
                gateways=gateways,
                data_dirs=[base / name for name in ("test", "w1", "w2", "gw1", "gw2")],
            )
        finally:
            for proc in procs:
                proc.stop()
            store.close()


def decode(b64: str | None) -> Image.Image:
    assert b64, "an empty image"
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("gateway", [0, 1])
def test_generations_with_links_signed_by_one_gateway_served_by_the_other(
    split: Split, gateway: int
) -> None:
    api = split.api(gateway)
    made = api.images.generate(model="fake", prompt=f"b64 {gateway}", size=SIZE)
    assert made.data is not None and decode(made.data[0].b64_json).size == (128, 128)

    linked = api.images.generate(
        model="fake", prompt=f"url {gateway}", size=SIZE, response_format="url", n=2
    )
    assert linked.data is not None and len(linked.data) == 2
    for item in linked.data:
        assert item.url is not None
        fetched = httpx.get(split.on_other_gateway(item.url, gateway), timeout=30)
        split.record(fetched)
        assert fetched.status_code == 200, fetched.text
        assert Image.open(io.BytesIO(fetched.content)).size == (128, 128)


@pytest.mark.parametrize("gateway", [0, 1])
def test_streams_send_partials_and_a_whole_image(split: Split, gateway: int) -> None:
    events = list(
        split.api(gateway).images.generate(
            model="fake", prompt=f"stream {gateway}", size=SIZE, stream=True, partial_images=2
        )
    )
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    for event in events:
        assert decode(event.b64_json).size == (128, 128)


def test_edits_of_an_upload_and_of_an_image_made_earlier(split: Split) -> None:
    upload = Image.new("RGB", (128, 128), "white")
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 64, 128))
    edited = split.api(0).images.edit(
        model="fake",
        image=("upload.png", png(upload), "image/png"),
        mask=("mask.png", png(mask), "image/png"),
        prompt="a blue square on the left",
    )
    assert edited.data is not None and decode(edited.data[0].b64_json).size == (128, 128)

    # An image one gateway's worker made, edited through the other gateway.
    made = split.api(0).images.generate(model="fake", prompt="to edit", size=SIZE)
    assert made.data is not None
    source = png(decode(made.data[0].b64_json))
    events = list(
        split.api(1).images.edit(
            model="fake",
            image=("made.png", source, "image/png"),
            prompt="make it green",
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert decode(events[-1].b64_json).size == (128, 128)


def wait_turns(http: httpx.Client, conv_id: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conv = http.get(f"/v1/conversations/{conv_id}").json()
        statuses = [t["job"]["status"] for t in conv["turns"]]
        assert not {"failed", "cancelled"} & set(statuses), conv
        if len(statuses) == count and set(statuses) == {"succeeded"}:
            return dict(conv)
        time.sleep(0.1)
    raise AssertionError(f"the turns of {conv_id} did not finish")


def test_a_conversation_goes_back_and_forth_between_gateways(split: Split) -> None:
    with split.http(0) as first, split.http(1) as second:
        conv = first.post("/v1/conversations", json={"title": "split"}).json()
        turns = f"/v1/conversations/{conv['id']}/turns"
        made = first.post(turns, json={"prompt": "a red circle", "size": SIZE})
        assert made.status_code == 202, made.text
        wait_turns(second, conv["id"], 1)
        # An edit of turn 1 (its encoding, stored by whichever worker made it) via gateway 2.
        edit = second.post(turns, json={"prompt": "make the circle blue"})
        assert edit.status_code == 202, edit.text
        assert edit.json()["mode"] == "edit" and edit.json()["parent_turn"] == 1
        done = wait_turns(first, conv["id"], 2)
        for i, turn in enumerate(done["turns"]):
            url = split.on_other_gateway(turn["image"]["url"], 0)
            picture = (second if i else first).get(url)
            assert picture.status_code == 200
            assert Image.open(io.BytesIO(picture.content)).size == (128, 128)


async def test_work_landed_on_both_workers_and_nothing_answered_5xx(split: Split) -> None:
    with split.store.db.connect() as conn:
        jobs = conn.execute(select(JobRow.id, JobRow.status)).all()
    assert len(jobs) >= 10 and {j.status for j in jobs} == {"succeeded"}, jobs
    client = await Client.connect(split.temporal_address)
    ran_on = {}
    for job in jobs:
        (identity,) = await render_results(client, job.id)  # one render counted per job
        ran_on[job.id] = identity.split("@")[0]
    print(f"\nsplit deployment: {len(jobs)} jobs, per worker {Counter(ran_on.values())}")
    assert set(ran_on.values()) == {str(w.pid) for w in split.workers}, ran_on
    # ... and no process kept a blob of its own: they all went to the object store.
    assert not [d for d in split.data_dirs if (d / "blobs").exists()]
    assert not split.server_errors, split.server_errors
