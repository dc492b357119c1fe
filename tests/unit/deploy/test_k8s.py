"""deploy/k8s: every core resource validates against the Kubernetes schemas shipped with
kubernetes-validate (offline, strict: unknown fields fail); the KEDA ScaledObjects validate
against keda_scaledobject.schema.json, written from KEDA's docs. No cluster is involved."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from daguerre.config import Settings
from daguerre.priority import express_queue
from tests.unit.deploy.artifacts import (
    K8S,
    image_command,
    k8s_documents,
    pod_containers,
    run_help,
    setting_env_names,
)

K8S_VERSION = "1.30.0"  # the oldest Kubernetes these manifests promise to run on
DOCS = k8s_documents()
CORE = [(p, d) for p, d in DOCS if not d["apiVersion"].startswith("keda.sh/")]
SCALED = [d for _, d in DOCS if d["kind"] == "ScaledObject"]
KEDA_SCHEMA = json.loads((Path(__file__).parent / "keda_scaledobject.schema.json").read_text())


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] == kind]


@pytest.mark.parametrize(
    "doc", [d for _, d in CORE], ids=[f"{p.name}:{d['kind']}" for p, d in CORE]
)
def test_core_resources_match_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    doc = copy.deepcopy(of_kind("Deployment")[0])
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_env_names_are_real_settings() -> None:
    names = set()
    for kind in ("ConfigMap", "Secret"):
        for doc in of_kind(kind):
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for _, doc in DOCS:
        for container in pod_containers(doc):
            names |= {e["name"] for e in container.get("env", [])}
    unknown = names - setting_env_names()
    assert not unknown, f"names Settings does not read: {unknown}"


def test_gateway_probes_service_and_disruption_budget() -> None:
    gateway = next(d for d in of_kind("Deployment") if d["metadata"]["name"].endswith("gateway"))
    (container,) = pod_containers(gateway)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["spec"]["replicas"] >= 2
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    selectors = [d["spec"]["selector"] for d in of_kind("Service")]
    assert any(s.items() <= labels.items() for s in selectors)
    budgets = [d["spec"]["selector"]["matchLabels"] for d in of_kind("PodDisruptionBudget")]
    assert any(b.items() <= labels.items() for b in budgets)


def worker_pools() -> dict[str, dict[str, Any]]:
    """Pool name -> its worker Deployment, read from the container's command line."""
    pools = {}
    for doc in of_kind("Deployment"):
        (container,) = pod_containers(doc)
        if container["args"][:2] == ["worker", "--pool"]:
            pools[container["args"][2]] = doc
    return pools


def test_a_worker_deployment_per_pool_with_requests_and_a_gpu_variant() -> None:
    pools = worker_pools()
    assert set(pools) == set(Settings().pools)
    gpus = 0
    for doc in pools.values():
        (container,) = pod_containers(doc)
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        gpus += "nvidia.com/gpu" in container["resources"]["limits"]
    assert gpus >= 1


def test_every_container_command_exists() -> None:
    commands = {tuple(c["args"]) for _, d in DOCS for c in pod_containers(d)}
    for command in sorted(commands):
        result = run_help(image_command(list(command)))
        assert result.returncode == 0, (command, result.stderr)


@pytest.mark.parametrize("doc", SCALED, ids=[d["metadata"]["name"] for d in SCALED])
def test_scaled_objects_match_the_keda_schema(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, KEDA_SCHEMA)


def test_keda_schema_rejects_a_misspelt_trigger_key() -> None:
    doc = copy.deepcopy(SCALED[0])
    doc["spec"]["triggers"][0]["metadata"]["taskqueue"] = "daguerre-chat"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, KEDA_SCHEMA)


def test_each_pool_scales_on_its_own_task_queues() -> None:
    pools = worker_pools()
    settings = Settings()
    assert len(SCALED) == len(pools)
    for scaled in SCALED:
        target = scaled["spec"]["scaleTargetRef"]["name"]
        pool = next(p for p, d in pools.items() if d["metadata"]["name"] == target)
        queue = settings.pools[pool].task_queue
        triggers = scaled["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"temporal"}
        assert {t["metadata"]["taskQueue"] for t in triggers} == {queue, express_queue(queue)}


def test_workers_have_probes_and_a_scraped_metrics_port() -> None:
    for pool, doc in worker_pools().items():
        (container,) = pod_containers(doc)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        port = int(env["DAGUERRE_WORKER_METRICS_PORT"])
        assert env["DAGUERRE_WORKER_METRICS_HOST"] == "0.0.0.0", pool
        (declared,) = [p for p in container["ports"] if p["name"] == "metrics"]
        assert declared["containerPort"] == port, pool
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", pool
        assert annotations["prometheus.io/port"] == str(port), pool
        assert annotations["prometheus.io/path"] == "/metrics", pool


def test_blobs_are_in_the_object_store_not_a_shared_volume() -> None:
    (config,) = [d for d in of_kind("ConfigMap") if d["metadata"]["name"] == "daguerre-config"]
    assert config["data"]["DAGUERRE_BLOB_URL"].startswith("s3://")
    assert "DAGUERRE_BLOB_DIR" not in config["data"]
    Settings(**{"blob_url": config["data"]["DAGUERRE_BLOB_URL"]})  # a URL the settings accept
    assert not of_kind("PersistentVolumeClaim")
    for deployment in of_kind("Deployment"):
        volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
        assert all("persistentVolumeClaim" not in v for v in volumes), deployment["metadata"]
