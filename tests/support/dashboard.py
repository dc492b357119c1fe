"""The provisioned Grafana dashboard (deploy/grafana), read for the tests: its queries, and
the metric names each one reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "daguerre.json"
# Every Daguerre metric is named daguerre_*; PromQL functions and labels never are.
_METRIC = re.compile(r"\bdaguerre_[a-z0-9_]+")
# What a family's samples are called in the exposition, by its type.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' targets and the variables' queries."""
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def queried_metrics(board: dict[str, Any]) -> set[str]:
    return {name for expr in queries(board) for name in _METRIC.findall(expr)}


def exposed_names(texts: Iterable[str]) -> set[str]:
    """The sample names scrapes offer, series or not: a labelled family with no series
    yet still announces itself (HELP and TYPE), and its samples' names follow its type."""
    names = set()
    for text in texts:
        for family in text_string_to_metric_families(text):
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
    return names
