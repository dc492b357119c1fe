"""The Grafana dashboard in deploy/grafana: it validates against the dashboard model's
schema (the part of it the dashboard uses), covers each concern of the control room, and
every metric it queries is one that a gateway or a worker exposes on /metrics."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from prometheus_client import generate_latest

from daguerre.gateway.metrics import Metrics
from daguerre.workers.metrics import WorkerMetrics
from tests.support.dashboard import dashboard, exposed_names, queried_metrics, queries
from tests.support.stack import REPO

SCHEMA = Path(__file__).with_name("grafana_dashboard.schema.json")
CONCERNS = (
    "Traffic by tier",
    "Admission",
    "Queue depth and wait by priority",
    "Latency by tier",
    "Workers: batch occupancy and preemptions",
    "Errors",
)


def test_the_dashboard_validates_against_the_schema() -> None:
    jsonschema.validate(dashboard(), json.loads(SCHEMA.read_text()))


def test_a_row_per_concern_and_panels_that_fit_the_grid() -> None:
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == list(CONCERNS)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    # Every panel reads the datasource the operator picks.
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_queries_are_balanced() -> None:
    for expr in queries(dashboard()):
        for opening, closing in ("()", "[]", "{}"):
            assert expr.count(opening) == expr.count(closing), expr


def test_every_queried_metric_is_exposed_by_a_gateway_or_a_worker() -> None:
    # The registries /metrics serves: the gateway's and the worker endpoint's.
    texts = [generate_latest(Metrics().registry), generate_latest(WorkerMetrics().registry)]
    exposed = exposed_names(text.decode() for text in texts)
    queried = queried_metrics(dashboard())
    assert len(queried) >= 20
    assert queried <= exposed, sorted(queried - exposed)


def test_the_provisioning_files_load_a_folder_and_a_prometheus() -> None:
    provisioning = REPO / "deploy/grafana/provisioning"
    dashboards = yaml.safe_load((provisioning / "dashboards/daguerre.yaml").read_text())
    [provider] = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    sources = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
