"""Prometheus metrics for ``GET /metrics``.

Counters are counted where the decision is made (each gateway counts its own; sum them
across replicas). Queue depth and degraded mode are read from the database at scrape
time. Wait and render times are observed from the job table at scrape time too (jobs
that finished since the previous scrape), because the gateway does not see every job
finish; with several replicas, scrape these from one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from daguerre.store import QueueStats

# Seconds: from a fast fake render to a long queue.
_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


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
            "daguerre_queue_depth", "Queued and deferred jobs", ["pool"], registry=self.registry
        )
        self.degraded = Gauge(
            "daguerre_degraded_mode",
            "1 while the pool is degraded",
            ["pool"],
            registry=self.registry,
        )
        self.wait = Histogram(
            "daguerre_job_wait_seconds",
            "From submission to the start of the render",
            ["tier"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.render = Histogram(
            "daguerre_job_render_seconds",
            "From the start of the render to its end",
            ["tier"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.preemptions = Counter(
            "daguerre_job_preemptions",
            "Times finished jobs' renders paused for higher-priority work",
            ["tier"],
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
            "Time to answer an HTTP request (for a stream, until it ends), by route",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._watermark = datetime.now(UTC)

    def observe_finished(self, stats: QueueStats) -> None:
        """Feed the histograms with the jobs finished since the last call (blocking)."""
        now = datetime.now(UTC)
        finished_jobs = stats.finished_between(self._watermark, now)
        for tier, _pool, created, started, finished, preemptions in finished_jobs:
            label = tier or "unknown"
            if preemptions:
                self.preemptions.labels(label).inc(preemptions)
            if started is not None:
                self.wait.labels(label).observe(max(0.0, started - created))
                if finished is not None:
                    self.render.labels(label).observe(max(0.0, finished - started))
        self._watermark = now

    def render_text(self) -> bytes:
        return generate_latest(self.registry)
