"""The one door from async code to blocking work: database calls, blob I/O, and the
little CPU work that must not stall an event loop (decoding an upload).

Every hop off an event loop in the gateway and the workers goes through ``run_blocking``
(tests/unit/test_boundaries.py keeps it so), which makes it one place to bound (its own
limiter, so a burst of database calls queues here instead of crowding the thread pool
that other libraries share), to trace, and one day to replace with async drivers.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio

P = ParamSpec("P")
T = TypeVar("T")

# Blocking calls in flight at once per event loop: the database pool's size plus room
# for blob reads. More wait for a free thread.
THREADS = 32

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _limiter() -> anyio.CapacityLimiter:
    """This event loop's limiter (a limiter belongs to the loop it was made in)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(THREADS)
    return limiter


async def run_blocking(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)`` on a worker thread, awaited without blocking the loop."""
    bound = functools.partial(call, *args, **kwargs)
    return await anyio.to_thread.run_sync(bound, limiter=_limiter())
