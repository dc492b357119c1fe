"""Which transport carries "job rows changed" from workers to gateways, chosen once
from the settings, the same way on both sides: Redis pub/sub when ``redis_url`` is set
(workers and gateways on many hosts), else the doorbells of this host (polling.py).
"""

from __future__ import annotations

from typing import Protocol

from daguerre.config import Settings
from daguerre.progress.feed import ProgressFeed
from daguerre.progress.polling import PollingProgressFeed, doorbell_folder
from daguerre.store import Store
from daguerre.store.doorbell import Doorbell, DoorbellListener


class Announcer(Protocol):
    def __call__(self, job_ids: set[str]) -> None:
        """These jobs' rows changed (called after the commit)."""

    def close(self) -> None: ...


def announcer(settings: Settings) -> Announcer:
    """How a worker tells watchers that job rows changed (``JobRows`` calls it after
    each commit): Redis pub/sub when configured, else the doorbell of every gateway on
    this host, whose feed then reads the rows."""
    if settings.redis_url:
        from daguerre.progress.redis_pubsub import RedisAnnouncer

        return RedisAnnouncer(settings.redis_url, settings.redis_retry_s)
    return Doorbell(doorbell_folder(settings))


def progress_feed(settings: Settings, store: Store) -> ProgressFeed:
    """The gateway's side, matching ``announcer``."""
    if settings.redis_url:
        from daguerre.progress.redis_pubsub import RedisProgressFeed

        return RedisProgressFeed(
            store, settings.redis_url, settings.redis_fallback_poll_s, settings.redis_retry_s
        )
    return PollingProgressFeed(
        store, settings.events_poll_interval_s, DoorbellListener(doorbell_folder(settings))
    )
