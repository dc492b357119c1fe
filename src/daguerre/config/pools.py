"""A pool's settings, by concern: where its work goes (routing), who gets in (admission),
how its workers render (worker sizing) and what `daguerre up` starts (launch).

Each concern is a mixin and `PoolSettings` is all of them, so a pool is still one flat JSON
object in ``DAGUERRE_POOLS`` and one set of attributes (``settings.pools[name].max_backlog``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from daguerre import priority as priorities


class PoolRouting(BaseModel):
    """Routing: which Temporal task queues a pool's work runs on."""

    task_queue: str = Field(
        default="", description="Its Temporal task queue. Empty: `daguerre-<pool name>`."
    )
    # The express queue is served by slots of its own on each worker, so a backlog of free
    # work never stands between paid jobs and a worker. See daguerre/priority.py.
    express_priority: int = Field(
        default=priorities.EXPRESS,
        ge=0,
        le=priorities.LOWEST,
        description="Jobs at this Temporal priority key or better (smaller; the shipped plus "
        "and pro) run, workflow and render, on the pool's express queue. 0: no express lane.",
    )


class PoolAdmission(BaseModel):
    """Admission: how much work the gateway lets into a pool, and when it degrades it."""

    max_backlog: int = Field(
        default=2000,
        ge=1,
        description="Past this many unfinished jobs only tiers with `admit_past_cap` get in "
        "(the hard cap that protects memory and the database).",
    )
    degrade_backlog: int = Field(
        default=200,
        ge=1,
        description="Degraded mode switches on at this backlog and off again below half of it.",
    )
    # Pacing keeps a surge's first second from pouring a whole cap of work onto Temporal at
    # once. Off by default: it would refuse a quiet pool's small bursts too.
    admit_pace: float = Field(
        default=0.0,
        ge=0,
        description="Tiers without `admit_past_cap` get in at most this many times the pool's "
        "measured throughput per second (a second of it as burst). 0: off. Live: "
        "`daguerre admin pace POOL 2`.",
    )


class PoolWorkerSizing(BaseModel):
    """Worker sizing: how each worker process of a pool batches, holds and pauses renders."""

    batch_images: int | None = Field(
        default=None,
        ge=1,
        description="The batch budget: images one worker process steps together in one "
        "forward pass (a job of n images counts n). None: the model's own, measured where its "
        "throughput stops growing (builtin: 64). See docs/performance.md.",
    )
    # On a CPU every image added to a step slows every image of it (paid ones included),
    # while an accelerator takes a bigger batch in about the same time.
    express_batch_images: int | None = Field(
        default=None,
        ge=1,
        description="While a render at `express_priority` or better runs, the batch holds at "
        "most this many images, pausing lower-priority ones to make room. None: the model's "
        "own advice (builtin: 16), or none at all.",
    )
    waiting_room: int = Field(
        default=32,
        ge=0,
        description="Renders a worker process holds beyond its batch budget, waiting to join "
        "at the next step: its Temporal activity slots are the budget plus this room.",
    )
    paused_memory_mb: int = Field(
        default=256,
        ge=0,
        description="Paused (preempted) renders keep their state in memory up to this many "
        "MiB per worker process; past it the worst-ranked are written out as checkpoints.",
    )
    preemption: bool = Field(
        default=True,
        description="Whether the scheduler pauses lower-priority renders (state kept) to make "
        "room in the batch for higher-priority ones that wait (workers/scheduler.py).",
    )


class PoolLaunch(BaseModel):
    """Launch: what `daguerre up` starts for a pool."""

    # Admission reads the capacity the workers report (gateway/access/capacity.py); this
    # is its guess only while no worker of the pool has reported.

    processes: int = Field(
        default=1, ge=0, description="Worker processes `daguerre up` starts for this pool."
    )


class PoolSettings(PoolRouting, PoolAdmission, PoolWorkerSizing, PoolLaunch):
    """An isolated slice of compute: its own Temporal task queue and worker processes."""


# In the order docs/configuration.md lists them: the order of PoolSettings' bases.
POOL_SECTIONS: tuple[type[BaseModel], ...] = PoolSettings.__bases__


def default_pools() -> dict[str, PoolSettings]:
    return {"chat": PoolSettings(), "api": PoolSettings()}
