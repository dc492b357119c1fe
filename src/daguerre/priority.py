"""The priority scale, and which task queue a job runs on: read alike by the gateway
(admission), the engine (where a workflow starts) and the workers (the scheduler's
order), so that a number means the same thing everywhere.

Priorities are Temporal priority keys: 1 runs first, 5 last. Temporal orders waiting
tasks by them (and, within one, shares out by fairness key: the account), and a
worker's scheduler orders the renders it holds by them the same way.

Each pool has four task queues:

- its main queue, for jobs (the workflow and its render);
- its express queue, for jobs at the pool's ``express_priority`` or better, which every
  worker of the pool serves with slots of its own: a backlog of lower-priority work on
  the main queue never stands between a paid job and a worker;
- its control queue, for bookkeeping activities (marking a job failed or cancelled),
  which never wait behind the pool's render backlog;
- its webhook queue (the control queue's name + "-webhooks"), for calling webhooks,
  which never wait behind, nor hold up, the bookkeeping.
"""

from __future__ import annotations

HIGHEST = 1
LOWEST = 5
# Temporal's own default key, and the shipped free tier's: where a job without a key
# (rows older than priorities) queues.
DEFAULT = 3
# Deferred work (accepted past its tier's wait budget) runs after every tier's own key.
DEFERRED = LOWEST
# Pools send jobs at this key or better to their express queue unless configured.
EXPRESS = 2


def is_deferred(priority: int | None) -> bool:
    """Whether a job at ``priority`` is deferred work, which waits as ``deferred``."""
    return priority is not None and priority >= DEFERRED


def express_queue(task_queue: str) -> str:
    return f"{task_queue}-express"


def control_queue(task_queue: str) -> str:
    return f"{task_queue}-control"


def webhook_queue(control: str) -> str:
    """Where a pool's webhook deliveries run (named from its control queue): on slots of
    their own, so that hung receivers never stand between a job and its bookkeeping."""
    return f"{control}-webhooks"


def job_queue(task_queue: str, priority: int, express_priority: int) -> str:
    """Where a job at ``priority`` runs in a pool whose main queue is ``task_queue``
    (``express_priority`` 0: the pool has no express lane)."""
    if express_priority and priority <= express_priority:
        return express_queue(task_queue)
    return task_queue
