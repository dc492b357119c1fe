"""Redis stopped mid-run under real processes: a gateway and a worker that use a Redis
of the test's own (for rate limits and progress events) keep serving when it dies.
Submits, streams and waits still succeed with no 5xx (rate limits fall back to memory,
progress to reading the rows), /readyz says Redis is down while staying ready, and
when Redis comes back everything uses it again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Stack, running_stack, unique_tag
from tests.support.redis_server import RedisServer
from tests.support.stack import StackConfig, wait_until


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_stack(tmp_path: Path, temporal_address: str, redis: RedisServer) -> Iterator[Stack]:
    values = {
        "redis_url": redis.url,
        "redis_retry_s": 1.0,
        # The fallback read is what carries progress while Redis is down.
        "redis_fallback_poll_s": 0.5,
    }
    config = StackConfig(tmp_path, unique_tag(), temporal_address, values=values, step_delay_s=0.05)
    with running_stack(config, tmp_path) as stack:
        yield stack


def _generate(http: httpx.Client, key: str, statuses: list[int], stream: bool = False) -> None:
    body = {"prompt": "a red circle", "size": "64x64", "model": "fake", "stream": stream}
    if stream:
        body["partial_images"] = 1
    headers = {"Authorization": f"Bearer {key}"}
    response = http.post("/v1/images/generations", json=body, headers=headers, timeout=60)
    statuses.append(response.status_code)
    if stream:
        assert "image_generation.completed" in response.text, response.text[-500:]
        assert '"type": "error"' not in response.text and '"type":"error"' not in response.text
    else:
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["b64_json"]


def _in_thread(
    http: httpx.Client, key: str, statuses: list[int], stream: bool, errors: list[BaseException]
) -> None:
    try:
        _generate(http, key, statuses, stream)
    except BaseException as error:  # reported by the test, not lost in the thread
        errors.append(error)


def _readyz(http: httpx.Client) -> dict[str, object]:
    response = http.get("/readyz")
    assert response.status_code == 200, response.text  # Redis never decides readiness
    return response.json()["checks"]  # type: ignore[no-any-return]


def test_submits_keep_succeeding_while_redis_is_down(
    redis_stack: Stack, redis: RedisServer
) -> None:
    key = redis_stack.new_key()
    statuses: list[int] = []
    errors: list[BaseException] = []
    with httpx.Client(base_url=redis_stack.url) as http:
        assert _readyz(http)["redis"] == "ok"
        _generate(http, key, statuses)
        # Jobs in flight when Redis dies: they still finish, and their streams too.
        flying = [
            threading.Thread(target=_in_thread, args=(http, key, statuses, i % 2 == 0, errors))
            for i in range(4)
        ]
        for thread in flying:
            thread.start()
        time.sleep(0.3)
        redis.stop()
        for thread in flying:
            thread.join(90)
        assert not errors, errors
        wait_until(lambda: _readyz(http)["redis"] == "unavailable", 20, "readyz shows Redis down")
        started = time.monotonic()
        for index in range(6):
            _generate(http, key, statuses, stream=index % 2 == 1)
        assert time.monotonic() - started < 90
        # Back: the gateway and the worker use it again within redis_retry_s or so.
        redis.start()
        wait_until(lambda: _readyz(http)["redis"] == "ok", 20, "readyz shows Redis back")
        _generate(http, key, statuses, stream=True)
    assert len(statuses) == 12
    assert all(status == 200 for status in statuses), statuses
