"""The priority scale and queue routing, as gateway, engine and workers read them."""

from __future__ import annotations

from daguerre import priority
from daguerre.access import TierSettings
from daguerre.config import PoolSettings, Settings


def test_the_scale_and_its_defaults() -> None:
    assert priority.HIGHEST < priority.DEFAULT < priority.DEFERRED == priority.LOWEST
    assert TierSettings().priority == priority.DEFAULT
    assert PoolSettings().express_priority == priority.EXPRESS
    assert priority.is_deferred(priority.DEFERRED) and not priority.is_deferred(4)
    assert not priority.is_deferred(None)


def test_each_pool_has_a_control_and_an_express_queue() -> None:
    assert priority.control_queue("daguerre-api") == "daguerre-api-control"
    assert priority.express_queue("q-api") == "q-api-express"


def test_high_priority_jobs_take_the_pools_express_queue() -> None:
    settings = Settings(
        pools={
            "api": PoolSettings(task_queue="q-api"),
            "chat": PoolSettings(task_queue="q-chat", express_priority=1),
            "batch": PoolSettings(task_queue="q-batch", express_priority=0),
        }
    )

    def queue(pool: str, p: int) -> str:
        pool_settings = settings.pools[pool]
        return priority.job_queue(pool_settings.task_queue, p, pool_settings.express_priority)

    # The default lane takes the shipped pro (1) and plus (2); free (3) and deferred
    # work (5) stay on the main queue.
    assert [queue("api", p) for p in (1, 2, 3, 5)] == [
        "q-api-express",
        "q-api-express",
        "q-api",
        "q-api",
    ]
    assert [queue("chat", p) for p in (1, 2)] == ["q-chat-express", "q-chat"]
    assert queue("batch", 1) == "q-batch"  # no express lane
