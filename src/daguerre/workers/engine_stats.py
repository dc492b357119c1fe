"""What the engine core tells its worker about itself, besides renders' updates: how
many renders it runs, holds paused and has swapped out, how long its batched steps take,
and the GPU memory the model holds. The worker turns these into its metrics and its
measured pace (workers/metrics.py); the core sends them at most every ``STATS_EVERY_S``
while it works, and once more when it falls idle (engine_client.serve).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

STATS_EVERY_S = 0.5
# Step samples kept between two reports: a report that cannot go out (a long step) must
# not let them grow without bound.
MAX_SAMPLES = 256


@dataclass(frozen=True)
class StepSample:
    """One batched step: how long it took, how many images it stepped, and the mean
    number of steps of the renders in it (what turns a step time into images per second)."""

    seconds: float
    images: int
    total_steps: float


@dataclass(frozen=True)
class EngineStats:
    running: int  # renders in the last step's running set
    paused: int  # preempted, their state in memory
    swapped: int  # preempted, their state written out as a checkpoint
    held: int  # running, paused, swapped or waiting for room in the batch
    samples: list[StepSample] = field(default_factory=list)
    swaps: int = 0  # paused states written out since the last stats
    # torch's CUDA memory, where the model uses CUDA; None elsewhere.
    cuda_allocated_bytes: int | None = None
    cuda_reserved_bytes: int | None = None


def cuda_memory() -> tuple[int | None, int | None]:
    """(allocated, reserved) bytes of torch's CUDA allocator in this process, or
    (None, None) where torch or CUDA is not in use: never initialises CUDA itself."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None, None
    return int(torch.cuda.memory_allocated()), int(torch.cuda.memory_reserved())


class StatsPacer:
    """When the core sends its stats: every ``every_s`` while busy, and once when it falls
    idle after working or being told something (so the last counts are not left stale)."""

    def __init__(
        self, every_s: float = STATS_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._unsent = True  # something happened since the last stats went out

    def due(self, idle: bool, told: bool = False) -> bool:
        """Whether to send now; ``told``: the core took in messages since the last call."""
        now = self._clock()
        self._unsent = self._unsent or told
        if idle:
            due = self._unsent
        else:
            self._unsent = True
            due = self._last is None or now - self._last >= self._every_s
        if due:
            self._last, self._unsent = now, False
        return due
