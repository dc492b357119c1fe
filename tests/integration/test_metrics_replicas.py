"""Two gateway replicas and two workers, scraped like Prometheus would: each process's
figures are its own, so summing them over every process gives the deployment's.

- requests and admissions are counted by the gateway that answered;
- the queue depth is exported by exactly one gateway (the lease holder), so its sum over
  replicas is the real backlog; a cleanly stopped holder hands the export over;
- each job's wait and render are observed by the worker that ran it, once;
- every metric the Grafana dashboard (deploy/grafana) queries is on their /metrics.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daguerre.domain import JobStatus
from daguerre.store import Store, open_store
from tests.integration.conftest import unique_tag
from tests.support.dashboard import dashboard, exposed_names, queried_metrics
from tests.support.stack import Proc, StackConfig, free_port, start_gateway, start_worker, wait_http

JOBS_PER_GATEWAY = 3
Labels = frozenset[tuple[str, str]]


def scrape(url: str, texts: list[str] | None = None) -> dict[tuple[str, Labels], float]:
    """One process's samples: (name, labels) -> value (and its text, into ``texts``)."""
    answer = httpx.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    if texts is not None:
        texts.append(answer.text)
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(scrapes: list[dict[tuple[str, Labels], float]], name: str, **labels: str) -> float:
    """The sum over every process and every series of ``name`` matching ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for samples in scrapes
        for (sample, series), value in samples.items()
        if sample == name and wanted <= series
    )


@pytest.fixture
def deployment(tmp_path: Path, temporal_address: str) -> Iterator[tuple[StackConfig, Store]]:
    """Settings every process shares: one data dir (SQLite, blobs), one Temporal."""
    config = StackConfig(tmp_path / "data", unique_tag(), temporal_address, step_delay_s=0.02)
    store = open_store(config.settings())
    yield config, store
    store.close()


def test_figures_of_two_gateways_and_two_workers_sum_to_the_deployments(
    deployment: tuple[StackConfig, Store], tmp_path: Path
) -> None:
    config, store = deployment
    account = store.accounts.create_account("replicas", "pro", "api")
    key = store.accounts.create_api_key(account.id)
    procs: list[Proc] = []
    try:
        gateways = []
        for _ in range(2):
            port = free_port()
            procs.append(start_gateway(config, port, tmp_path))
            gateways.append(f"http://127.0.0.1:{port}")
        # No worker yet: every accepted job waits, so the queue depth is known exactly.
        job_ids = []
        for url in gateways:
            for i in range(JOBS_PER_GATEWAY):
                answer = httpx.post(
                    f"{url}/v1/jobs",
                    json={"prompt": f"a red circle {i}", "model": "fake", "size": "128x128"},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                assert answer.status_code == 202, answer.text
                job_ids.append(answer.json()["id"])
        jobs = len(job_ids)
        before = [scrape(url) for url in gateways]
        # Each gateway counted what it answered, and the sum is every request.
        for samples in before:
            posts = total([samples], "daguerre_http_requests_total", route="/v1/jobs", status="202")
            assert posts == JOBS_PER_GATEWAY
            assert total([samples], "daguerre_jobs_admitted_total", tier="pro") == JOBS_PER_GATEWAY
        assert total(before, "daguerre_jobs_admitted_total") == jobs
        # The queue: one exporter, whose figures are the whole backlog.
        assert total(before, "daguerre_queue_exporter") == 1
        assert total(before, "daguerre_queue_depth", pool="api") == jobs
        assert total(before, "daguerre_queue_depth", pool="api", status="queued") == jobs

        worker_urls = []
        for name in ("w1", "w2"):
            port = free_port()
            worker = replace(config, values={"worker_metrics_port": port})
            procs.append(start_worker(worker, "api", tmp_path, name))
            worker_urls.append(f"http://127.0.0.1:{port}")
        for url in worker_urls:
            wait_http(f"{url}/healthz")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = Counter(j.status for j in map(store.jobs.get, job_ids) if j is not None)
            if states[JobStatus.SUCCEEDED] == jobs:
                break
            time.sleep(0.2)
        assert states[JobStatus.SUCCEEDED] == jobs, states

        texts: list[str] = []
        workers = [scrape(url, texts) for url in worker_urls]
        # Every job waited and rendered on exactly one worker.
        assert total(workers, "daguerre_job_wait_seconds_count", tier="pro", pool="api") == jobs
        assert total(workers, "daguerre_job_render_seconds_count", tier="pro", pool="api") == jobs
        assert total(workers, "daguerre_worker_batch_occupancy_count", pool="api") >= 1
        after = [scrape(url, texts) for url in gateways]
        # Every metric the Grafana dashboard queries is on these processes' /metrics.
        queried = queried_metrics(dashboard())
        assert queried <= exposed_names(texts), sorted(queried - exposed_names(texts))
        assert total(after, "daguerre_queue_exporter") == 1
        assert total(after, "daguerre_queue_depth") == 0

        # The exporter stops cleanly: the other replica takes the queue over at its next
        # scrape, instead of after the lease runs out.
        exporter = 0 if total([after[0]], "daguerre_queue_exporter") == 1 else 1
        procs[exporter].stop()
        survivor = scrape(gateways[1 - exporter])
        assert total([survivor], "daguerre_queue_exporter") == 1
    finally:
        for proc in procs:
            proc.stop()
