"""A pool's capacity as its workers report it (store/workers.py), for admission's
estimate while too few jobs have finished to measure the pool's throughput.

Workers may run on any host, in any number: only they know their batch budget and how
fast they render. Each reports both every few seconds; a pool's capacity is the sum over
its live workers of their measured pace (images per second at the batches they ran),
or, for a worker that has not rendered yet, its batch budget over the pool's recent
render time (a full batch of renders finishes together). A job counts as one image.
"""

from __future__ import annotations

import logging

from daguerre.store.workers import WorkerRegistry, WorkerReport, staleness_s

log = logging.getLogger(__name__)


def reported_throughput(workers: list[WorkerReport], render_s: float | None) -> float | None:
    """Jobs per second ``workers`` can finish together, or None if none of them says
    (no pace measured yet, and no recent render time to divide a batch by)."""
    total, known = 0.0, False
    for worker in workers:
        if worker.images_per_s:
            total, known = total + worker.images_per_s, True
        elif render_s:
            total, known = total + worker.batch_images / render_s, True
    return total if known else None


def live_workers(registry: WorkerRegistry | None, pool: str, report_s: float) -> list[WorkerReport]:
    """The pool's workers that reported recently; none if the registry cannot be read
    (admission then guesses, as before workers reported: it must never fail on this)."""
    if registry is None:
        return []
    try:
        return registry.live(pool, staleness_s(report_s))
    except Exception:  # the database is away: the caller falls back to its guess
        log.warning("could not read the worker registry for pool %s", pool, exc_info=True)
        return []
