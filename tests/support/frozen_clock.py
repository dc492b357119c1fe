"""A monotonic clock that moves only when a test moves it.

It stands in for one module's ``time`` (``monkeypatch.setattr(module, "time", clock)``),
so that module's caches age exactly as the test says, whatever the machine's speed,
while everything else, the event loop included, keeps the real clock. (Patching
``time.monotonic`` itself would freeze the loop's clock too.)
"""

from __future__ import annotations


class FrozenClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now
