"""Render progress, from the worker that makes it to whoever watches the job.

The job row is the record. A worker stores a step's images first (its partial image,
the latest preview), then records the step in the row, then announces that rows
changed (``announcer``). A gateway's feed (``progress_feed``) reads the rows when told
to and hands watchers typed ``ProgressEvent``s. Modules:

- ``events``: the events, and the preview's blob key;
- ``feed``: ``RowFeed``, one poller for every job a gateway follows, driven by a
  ``ChangeSignal`` (something that says "read now");
- ``polling``: the embedded signals, a timer and this host's doorbell;
- ``redis_pubsub``: the announcer and signal for many hosts, through Redis;
- ``transport``: which of those the settings choose, for workers and gateways alike.
"""

from __future__ import annotations

from daguerre.progress.events import ProgressEvent
from daguerre.progress.feed import ProgressFeed
from daguerre.progress.transport import Announcer, announcer, progress_feed

__all__ = [
    "Announcer",
    "ProgressEvent",
    "ProgressFeed",
    "announcer",
    "progress_feed",
]
