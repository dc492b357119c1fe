"""Per-destination backoff and a circuit breaker for webhook deliveries.

A customer's receiver that is down or hangs must cost the worker as little as possible,
and nothing to other customers' deliveries: a destination (scheme, host, port) gets at
most ``max_in_flight`` deliveries at once; each consecutive failure doubles the wait
before its next try; and after ``threshold`` consecutive failures it is not called at
all for ``cooloff_s`` (deliveries to it fail at once, to be retried after the cool-off),
then one try decides whether it opens again. State lives in the worker process: a
second worker learns of a dead destination on its own, which is cheap enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Destination:
    failures: int = 0  # consecutive
    open_until: float = 0.0
    in_flight: int = 0


class DestinationBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooloff_s: float = 60.0,
        max_in_flight: int = 4,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooloff_s = cooloff_s
        self.max_in_flight = max_in_flight
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._destinations: dict[str, _Destination] = {}

    def _get(self, key: str) -> _Destination:
        return self._destinations.setdefault(key, _Destination())

    def open_for(self, key: str) -> float:
        """Seconds the destination's breaker stays open (0: it may be called)."""
        state = self._destinations.get(key)
        if state is None:
            return 0.0
        return max(0.0, state.open_until - self._clock())

    def try_acquire(self, key: str) -> bool:
        """Take one of the destination's in-flight places; False: all are taken."""
        state = self._get(key)
        if state.in_flight >= self.max_in_flight:
            return False
        state.in_flight += 1
        return True

    def release(self, key: str) -> None:
        state = self._get(key)
        state.in_flight = max(0, state.in_flight - 1)
        self._forget_if_idle(key, state)

    def succeeded(self, key: str) -> None:
        state = self._get(key)
        state.failures = 0
        state.open_until = 0.0
        self._forget_if_idle(key, state)

    def failed(self, key: str) -> float:
        """Record a failure; the seconds to wait before the destination's next try."""
        state = self._get(key)
        state.failures += 1
        doublings = min(state.failures - 1, 30)
        backoff = min(self.backoff_base_s * 2**doublings, self.backoff_max_s)
        if state.failures >= self.threshold:
            state.open_until = self._clock() + self.cooloff_s
            backoff = max(backoff, self.cooloff_s)
        return backoff

    def _forget_if_idle(self, key: str, state: _Destination) -> None:
        # Healthy, idle destinations are not kept: the map stays the size of the
        # destinations now in trouble or in use.
        if state.failures == 0 and state.in_flight == 0:
            self._destinations.pop(key, None)
