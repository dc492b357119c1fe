"""A cap on the Server-Sent Event streams one account holds open on a gateway.

Every open stream costs the gateway a connection, a watcher of the job feed and a task
for as long as the job runs (a long queue: minutes), and it is free to open: without
a cap, one account could hold thousands and starve everyone else's. The count lives in
the gateway's memory, so the cap is per gateway process; a stream's slot is taken
before its job is submitted (a refused stream starts no work) and given back when the
response ends, however it ends (finished, client gone, server shutting down).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from daguerre.gateway.api.errors import APIError

Release = Callable[[], None]
# No stream has a known end, so this only spaces out the retries.
RETRY_AFTER_S = 5


class StreamSlots:
    """Open streams per account, up to ``per_account`` each (0: no cap). Used from the
    event loop only, so it needs no lock."""

    def __init__(self, per_account: int) -> None:
        self.per_account = per_account
        self._open: dict[str, int] = {}

    def open(self, account_id: str) -> int:
        return self._open.get(account_id, 0)

    def acquire(self, account_id: str) -> Release:
        """Take a slot, or a 429 (too_many_streams). Call the result to give it back;
        calling it again does nothing."""
        count = self._open.get(account_id, 0)
        if self.per_account and count >= self.per_account:
            raise APIError(
                429,
                f"Too many open streams: this account already has {count} open on this "
                f"server, the most allowed ({self.per_account}). Close one, or wait for one "
                f"to finish, then retry in {RETRY_AFTER_S}s.",
                code="too_many_streams",
                type="requests",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self._open[account_id] = count + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._open.get(account_id, 1) - 1
            if left > 0:
                self._open[account_id] = left
            else:
                self._open.pop(account_id, None)

        return release


class SlotStreamingResponse(StreamingResponse):
    """A streaming response that gives its stream slot back when it ends, or, if it is
    never sent at all, when it is dropped."""

    def __init__(self, content: AsyncIterable[str], release: Release, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release
        weakref.finalize(self, release)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
