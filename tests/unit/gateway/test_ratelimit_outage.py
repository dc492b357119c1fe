"""The rate limiter when Redis goes away: each ``redis_outage`` mode, one warning per
outage, a metric per check decided without Redis, and the way back once Redis answers.
Against a real ``redis-server`` that the test stops and starts again."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daguerre.access import TierSettings
from daguerre.gateway.access.ratelimit import OutageMode, RateLimiter
from tests.support.redis_server import RedisServer, redis_server

TIER = TierSettings(requests="3/minute", images="10/minute")
RETRY_S = 0.3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def limiter(server: RedisServer, mode: OutageMode, seen: list[str]) -> RateLimiter:
    return RateLimiter(server.url, mode, RETRY_S, on_fallback=seen.append)


def allowed(limiter: RateLimiter, account: str, count: int) -> list[bool]:
    return [limiter.check(account, TIER, 1).allowed for _ in range(count)]


def test_memory_mode_counts_per_gateway_and_recovers(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    rl = limiter(server, "memory", seen)
    assert allowed(rl, "a", 2) == [True, True]  # in Redis
    assert rl.ping() and not rl.redis_down
    server.stop()
    with caplog.at_level(logging.WARNING, logger="daguerre.gateway.access.ratelimit"):
        # A fresh window in memory: three more, then the limit holds.
        assert allowed(rl, "a", 4) == [True, True, True, False]
        ok, window = rl.hit("2/minute", "reads", "a")
        assert ok and window.remaining == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not per request
    assert seen == ["memory"] * 5
    assert rl.redis_down and not rl.ping()
    server.start()  # empty: the counts of before the outage are gone
    time.sleep(RETRY_S + 0.05)
    assert allowed(rl, "a", 4) == [True, True, True, False]
    assert not rl.redis_down and len(seen) == 5
    server.stop()  # a second outage starts from empty memory counts too
    assert allowed(rl, "b", 1) == [True]
    assert rl.check("a", TIER, 1).requests.remaining == 2


def test_open_mode_lets_everything_through(server: RedisServer) -> None:
    seen: list[str] = []
    rl = limiter(server, "open", seen)
    server.stop()
    assert allowed(rl, "a", 5) == [True] * 5
    check = rl.check("a", TIER, 1)
    assert check.headers()["x-ratelimit-remaining-requests"] == "3"
    assert rl.hit("1/minute", "reads", "a")[0]
    assert seen == ["open"] * 7


def test_closed_mode_refuses_until_redis_is_back(server: RedisServer) -> None:
    seen: list[str] = []
    rl = limiter(server, "closed", seen)
    server.stop()
    check = rl.check("a", TIER, 1)
    assert not check.allowed and check.exceeded == "unavailable"
    assert check.retry_after_s == 1
    assert rl.hit("5/minute", "reads", "a")[0] is False
    server.start()
    time.sleep(RETRY_S + 0.05)
    assert rl.check("a", TIER, 1).allowed
    assert seen == ["closed", "closed"]


def test_redis_is_left_alone_between_retries(server: RedisServer) -> None:
    rl = RateLimiter(server.url, "memory", retry_s=60)
    server.stop()
    assert rl.check("a", TIER, 1).allowed
    server.start()
    # Back, but not tried again before retry_s: this check is still counted in memory.
    assert rl.redis_down and rl.ping()
    assert rl.check("a", TIER, 1).requests.remaining == 1
