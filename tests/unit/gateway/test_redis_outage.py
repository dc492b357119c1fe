"""A gateway whose Redis (a ``redis-server`` of the test's own) is killed mid-run and
started again: submits, waits and streams never answer 5xx, ``/readyz`` stays 200 and
says Redis is unavailable, the fallback is counted in ``/metrics``, and the gateway goes
back to Redis once it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from daguerre.config import Settings
from tests.support.redis_server import RedisServer, redis_server
from tests.unit.gateway.conftest import Gateway, running_gateway

RETRY_S = 0.3


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Gateway, RedisServer]]:
    with redis_server(tmp_path / "redis") as server:
        settings = Settings(
            data_dir=tmp_path / "data",
            events_poll_interval_s=0.02,
            redis_url=server.url,
            redis_fallback_poll_s=0.05,
            redis_retry_s=RETRY_S,
        )
        async with running_gateway(settings) as gateway:
            yield gateway, server


async def traffic(gateway: Gateway) -> list[int]:
    """One of each kind of request that counts against the limits."""
    body = {"prompt": "a red circle", "size": "64x64"}
    client, auth = gateway.client, gateway.auth()
    submitted = await client.post("/v1/jobs", json=body, headers=auth)
    waited = await client.post("/v1/images/generations", json=body, headers=auth)
    streamed = await client.post(
        "/v1/images/generations", json={**body, "stream": True}, headers=auth
    )
    statuses = [submitted.status_code, waited.status_code, streamed.status_code]
    assert "event: image_generation.completed" in streamed.text or streamed.status_code != 200
    if submitted.status_code == 202:
        read = await client.get(f"/v1/jobs/{submitted.json()['id']}", headers=auth)
        statuses.append(read.status_code)
    return statuses


async def test_redis_killed_mid_run_and_back(setup: tuple[Gateway, RedisServer]) -> None:
    gateway, server = setup
    limiter = gateway.client._transport.app.state.services.limiter  # type: ignore[attr-defined]
    ready = (await gateway.client.get("/readyz")).json()
    assert ready["checks"]["redis"] == "ok"
    statuses = await traffic(gateway)

    async def kill_soon() -> None:
        await asyncio.sleep(0.05)
        await anyio.to_thread.run_sync(server.stop)

    killer = asyncio.create_task(kill_soon())
    for _ in range(4):  # during and after the kill
        statuses += await traffic(gateway)
    await killer
    statuses += await traffic(gateway)
    assert limiter.redis_down
    readyz = await gateway.client.get("/readyz")
    assert readyz.status_code == 200 and readyz.json()["status"] == "ready"
    assert readyz.json()["checks"] == {
        "database": "ok",
        "temporal": "ok",
        "blobs": "ok",
        "redis": "unavailable",
    }
    assert "daguerre_ratelimit_redis_fallbacks_total{mode=" in await metrics(gateway)

    await anyio.to_thread.run_sync(server.start)
    await asyncio.sleep(RETRY_S + 0.1)
    statuses += await traffic(gateway)
    assert not limiter.redis_down  # counted in Redis again
    assert (await gateway.client.get("/readyz")).json()["checks"]["redis"] == "ok"
    assert set(statuses) <= {200, 202}, statuses


async def metrics(gateway: Gateway) -> str:
    response = await gateway.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_closed_mode_refuses_with_429_not_5xx(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        settings = Settings(data_dir=tmp_path / "data", redis_url=server.url, redis_outage="closed")
        async with running_gateway(settings) as gateway:
            body = {"prompt": "a red circle", "size": "64x64"}
            ok = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
            assert ok.status_code == 202
            server.stop()
            refused = await gateway.client.post("/v1/jobs", json=body, headers=gateway.auth())
            assert refused.status_code == 429
            assert "cannot be counted" in refused.json()["error"]["message"]
            assert int(refused.headers["Retry-After"]) >= 1
            read = await gateway.client.get(f"/v1/jobs/{ok.json()['id']}", headers=gateway.auth())
            assert read.status_code == 429  # the read limit is held back too
