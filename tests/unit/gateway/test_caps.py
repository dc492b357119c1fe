"""Per-account caps on what starts no job: open event streams, and the read rate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from daguerre.config import Settings
from daguerre.gateway.access.streams import SlotStreamingResponse, StreamSlots
from daguerre.gateway.app import create_app
from daguerre.gateway.context import Services
from daguerre.store import Store, open_store
from tests.support.engine import FakeEngine


@dataclass
class Gateway:
    http: httpx.AsyncClient
    store: Store
    engine: FakeEngine
    services: Services
    alice: str
    bob: str
    alice_id: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.alice}"}


Make = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Gateway]:
        settings = Settings(data_dir=tmp_path, events_poll_interval_s=0.02, **values)
        store = open_store(settings)
        alice = store.accounts.create_account("alice", "pro", "api")
        bob = store.accounts.create_account("bob", "pro", "api")
        keys = [store.accounts.create_api_key(a.id) for a in (alice, bob)]
        engine = FakeEngine(store)
        app = create_app(settings, workflows=engine, store=store)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as http,
        ):
            yield Gateway(http, store, engine, app.state.services, keys[0], keys[1], alice.id)

    return factory


async def finished_job(gw: Gateway) -> str:
    made = await gw.http.post("/v1/jobs", json={"prompt": "a"}, headers=gw.auth())
    job_id = str(made.json()["id"])
    for _ in range(300):
        job = gw.store.jobs.get(job_id)
        if job is not None and job.is_terminal:
            return job_id
        await asyncio.sleep(0.01)
    raise AssertionError("the job never finished")


# --- open streams ----------------------------------------------------------------------


def test_slots_are_per_account_and_given_back_once() -> None:
    slots = StreamSlots(2)
    first, second = slots.acquire("a"), slots.acquire("a")
    slots.acquire("b")  # another account's streams are its own
    with pytest.raises(Exception) as refused:
        slots.acquire("a")
    assert getattr(refused.value, "status", None) == 429
    first()
    first()  # twice is once
    assert slots.open("a") == 1
    slots.acquire("a")
    second()
    assert StreamSlots(0).acquire("a") is not None  # 0: no cap


async def test_an_account_past_its_streams_gets_429(make: Make) -> None:
    async with make(max_streams_per_account=2) as gw:
        job_id = await finished_job(gw)
        held = [gw.services.streams.acquire(gw.alice_id) for _ in range(2)]
        refused = await gw.http.get(f"/v1/jobs/{job_id}/events", headers=gw.auth())
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["type"]) == ("too_many_streams", "requests")
        assert int(refused.headers["retry-after"]) >= 1
        # A streamed generation is refused before its job exists.
        before = len(gw.engine.submitted)
        body = {"prompt": "a", "size": "64x64", "stream": True}
        stream = await gw.http.post("/v1/images/generations", json=body, headers=gw.auth())
        assert stream.status_code == 429 and len(gw.engine.submitted) == before
        # Someone else's streams are not counted against alice.
        other = await gw.http.get(f"/v1/jobs/{job_id}/events", headers=gw.auth(gw.bob))
        assert other.status_code == 404
        held[0]()
        ok = await gw.http.get(f"/v1/jobs/{job_id}/events", headers=gw.auth())
        assert ok.status_code == 200 and "event: completed" in ok.text
        # The stream ended and gave its slot back: only the one still held is open.
        assert gw.services.streams.open(gw.alice_id) == 1


async def test_a_streamed_generation_gives_its_slot_back(make: Make) -> None:
    async with make(max_streams_per_account=1) as gw:
        body = {"prompt": "a", "size": "64x64", "stream": True}
        for _ in range(2):  # the second would be refused if the first kept its slot
            response = await gw.http.post("/v1/images/generations", json=body, headers=gw.auth())
            assert response.status_code == 200 and "image_generation.completed" in response.text
        assert gw.services.streams.open(gw.alice_id) == 0


async def test_a_client_that_leaves_gives_its_slot_back() -> None:
    slots = StreamSlots(1)

    async def forever() -> AsyncIterator[str]:
        while True:
            yield ": keep-alive\n\n"
            await asyncio.sleep(0.01)

    response = SlotStreamingResponse(forever(), slots.acquire("a"))
    assert slots.open("a") == 1

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await asyncio.wait_for(response(scope, receive, send), 5)
    assert slots.open("a") == 0


# --- the read rate ---------------------------------------------------------------------


async def test_reads_past_the_read_limit_get_429(make: Make) -> None:
    async with make(read_rate_limit="3/minute") as gw:
        job_id = await finished_job(gw)  # a submit is not a read
        for _ in range(2):
            assert (await gw.http.get(f"/v1/jobs/{job_id}", headers=gw.auth())).status_code == 200
        # Conversation requests count too, writes included.
        assert (await gw.http.post("/v1/conversations", headers=gw.auth())).status_code == 201
        refused = await gw.http.get(f"/v1/jobs/{job_id}", headers=gw.auth())
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
        assert int(refused.headers["retry-after"]) >= 1
        for path in (f"/v1/jobs/{job_id}/events", "/v1/conversations"):
            assert (await gw.http.get(path, headers=gw.auth())).status_code == 429
        # Another account has its own budget; and submitting is not held back by reads.
        assert (await gw.http.get("/v1/conversations", headers=gw.auth(gw.bob))).status_code == 200
        again = await gw.http.post("/v1/jobs", json={"prompt": "b"}, headers=gw.auth())
        assert again.status_code == 202


async def test_no_read_limit_when_switched_off(make: Make) -> None:
    async with make(read_rate_limit=None) as gw:
        for _ in range(5):
            assert (await gw.http.get("/v1/conversations", headers=gw.auth())).status_code == 200


async def test_the_contract_lists_the_429_of_capped_reads(make: Make) -> None:
    async with make() as gw:
        paths = (await gw.http.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/jobs/{job_id}/events", "get"),
        ("/v1/images/files/{image_id}", "get"),
        ("/v1/conversations", "get"),
        ("/v1/conversations/{conversation_id}", "patch"),
    ):
        assert "429" in paths[path][method]["responses"], (method, path)
