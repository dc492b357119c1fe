"""Prometheus metrics for ``GET /metrics``.

Each gateway counts what it decides and answers (requests, admissions, refusals), so
replicas' figures sum. The queue depth is read from the job table, the one place that
knows it, by one replica at a time: the holder of the ``queue-metrics`` lease
(store/leases.py), taken at scrape time; the others leave the series out, so ``sum`` over
every replica counts the queue once. Jobs' wait and render times are observed by the
worker that runs each job (workers/metrics.py). docs/operations.md says how to scrape N
replicas.
"""

from __future__ import annotations

import os
import secrets
import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from daguerre.priority import DEFAULT
from daguerre.store import Leases, Store
from daguerre.store.queue_stats import Depth

# Seconds: from a fast fake render to a long queue.
_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
QUEUE_LEASE = "queue-metrics"
# Longer than any sensible scrape interval: the holder renews at every scrape, and a
# replica that stops being scraped (or dies) hands the export over after this long.
QUEUE_LEASE_S = 120.0


class Metrics:
    def __init__(self) -> None:
        # A registry per gateway app, so that tests can build many apps in one process.
        self.registry = CollectorRegistry()
        labels = ["tier", "pool"]
        self.admitted = Counter(
            "daguerre_jobs_admitted", "Jobs admitted to run now", labels, registry=self.registry
        )
        self.deferred = Counter(
            "daguerre_jobs_deferred",
            "Jobs accepted past their tier's wait budget, to run when capacity frees",
            labels,
            registry=self.registry,
        )
        self.rejected = Counter(
            "daguerre_jobs_rejected",
            "Requests refused: rate limit, queue_full, capacity_exceeded, admission_paced, rollout",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.moderation_refusals = Counter(
            "daguerre_moderation_refusals",
            "Prompts moderation refused (moderation_blocked), by tier and policy",
            ["tier", "policy"],
            registry=self.registry,
        )
        self.degraded_jobs = Counter(
            "daguerre_jobs_degraded",
            "Jobs given their tier's reduced settings",
            labels,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "daguerre_queue_depth",
            "Waiting jobs by pool, priority key and status (queued, deferred); exported by "
            "one gateway replica at a time (see exporting_queue)",
            ["pool", "priority", "status"],
            registry=self.registry,
        )
        self.exporting_queue = Gauge(
            "daguerre_queue_exporter",
            "1 on the gateway replica that exports daguerre_queue_depth, 0 on the others",
            registry=self.registry,
        )
        self.degraded = Gauge(
            "daguerre_degraded_mode",
            "1 while the pool is degraded, as this gateway sees it (aggregate with max)",
            ["pool"],
            registry=self.registry,
        )
        self.ratelimit_fallbacks = Counter(
            "daguerre_ratelimit_redis_fallbacks",
            "Rate-limit checks decided without Redis (it was out), by redis_outage mode",
            ["mode"],
            registry=self.registry,
        )
        self.retention_jobs = Counter(
            "daguerre_retention_jobs",
            'Finished jobs whose blobs the retention sweep deleted: "leftovers" (checkpoints) '
            'or "expired" (images, uploads, previews past their tier\'s retention)',
            ["what", "tier"],
            registry=self.registry,
        )
        self.retention_failures = Counter(
            "daguerre_retention_sweep_failures",
            "Retention sweeps that stopped on an error (the blob store or the database)",
            registry=self.registry,
        )
        self.missing_blobs = Counter(
            "daguerre_blobs_missing",
            "Images a finished job names that the blob store does not hold (expired ones aside)",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "daguerre_http_requests",
            "HTTP requests by route template, method, status and the caller's tier",
            ["route", "method", "status", "tier"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "daguerre_http_request_seconds",
            "Time to answer an HTTP request (for a stream, until it ends; for a synchronous "
            "generation, the whole render), by route and the caller's tier",
            ["route", "tier"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # Who this process is, for the queue-depth lease: unique per process start.
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def observe_queue(self, leases: Leases, depth: Depth) -> None:
        """Set the queue-depth gauges to ``depth`` (QueueStats.depth) if this replica holds
        the lease, else drop them (blocking: one write)."""
        self.queue_depth.clear()
        if not leases.hold(QUEUE_LEASE, self.instance, QUEUE_LEASE_S):
            self.exporting_queue.set(0)
            return
        self.exporting_queue.set(1)
        for (pool, priority, status), count in depth.items():
            self.queue_depth.labels(pool, priority_label(priority), status).set(count)

    def release_queue(self, store: Store) -> None:
        """Hand the export over at once (a clean shutdown; blocking)."""
        store.leases.release(QUEUE_LEASE, self.instance)

    def render_text(self) -> bytes:
        return generate_latest(self.registry)


def priority_label(priority: int | None) -> str:
    """A priority key as a label (a row without one queues at Temporal's default)."""
    return str(DEFAULT if priority is None else priority)
