"""Progress events from a worker process to a gateway process through Redis pub/sub
(the real Redis at DAGUERRE_TEST_REDIS_URL, default redis://127.0.0.1:6379/15;
skipped when none answers). The gateway's fallback read of the job row is set longer
than the test may take, so the stream can only finish if the events came through Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.conftest import Stack, running_stack, unique_tag
from tests.integration.test_openai_client import PROMPT, client
from tests.support.stack import StackConfig
from tests.unit.progress.test_redis_pubsub import REDIS_URL


@pytest.fixture
def redis_stack(tmp_path: Path, temporal_address: str, e2e_model: str) -> Iterator[Stack]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as err:
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    values = {
        "redis_url": REDIS_URL,
        "redis_fallback_poll_s": 300,
        "events_poll_interval_s": 300,
    }
    config = StackConfig(tmp_path, unique_tag(), temporal_address, e2e_model, values, 0.05)
    with running_stack(config, tmp_path) as stack:
        yield stack


def test_stream_follows_events_through_redis(redis_stack: Stack) -> None:
    api = client(redis_stack, redis_stack.new_key())
    started = time.monotonic()
    events = list(
        api.images.generate(
            model=redis_stack.model, prompt=PROMPT, size="128x128", stream=True, partial_images=3
        )
    )
    assert [e.type for e in events] == ["image_generation.partial_image"] * 3 + [
        "image_generation.completed"
    ]
    assert time.monotonic() - started < 60  # far below the 300 s fallback read
