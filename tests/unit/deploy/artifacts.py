"""Reading the deployment artifacts (Dockerfile, compose.yaml, deploy/k8s) for the tests.

There is no container daemon or cluster here, so what can be proved is what the files say:
the commands they run, the settings they set, and the schemas they follow. These helpers pull
those facts out once, so each test states one claim.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from daguerre.config import Settings
from tests.support.stack import REPO

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
K8S = REPO / "deploy" / "k8s"
DAGUERRE = Path(sys.executable).parent / "daguerre"


def setting_env_names() -> set[str]:
    """The environment names Settings reads: DAGUERRE_ + each field, upper case."""
    return {f"DAGUERRE_{name.upper()}" for name in Settings.model_fields}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    """An ENTRYPOINT/CMD argument: the JSON exec form, or a shell string split like sh would."""
    return list(json.loads(args)) if args.startswith("[") else shlex.split(args)


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the last stage: the image that runs."""
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


def image_command(override: list[str] | None = None) -> list[str]:
    """What the image runs: its ENTRYPOINT followed by CMD, or by an override of CMD."""
    stage = final_stage(dockerfile_instructions(DOCKERFILE.read_text()))
    entrypoint = [exec_form(a) for w, a in stage if w == "ENTRYPOINT"][-1]
    cmd = [exec_form(a) for w, a in stage if w == "CMD"][-1]
    return entrypoint + (cmd if override is None else override)


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def daguerre_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compose services that run the Daguerre image (they have a build of this repo)."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every resource in deploy/k8s, with the file it came from (kustomization excluded)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod template ([] for kinds without one)."""
    if doc["kind"] not in {"Deployment", "StatefulSet", "DaemonSet"}:
        return []
    return list(doc["spec"]["template"]["spec"]["containers"])


def run_help(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a container's command line with --help through this venv's `daguerre`."""
    assert argv[0] == "daguerre", argv
    return subprocess.run(
        [str(DAGUERRE), *argv[1:], "--help"], capture_output=True, text=True, timeout=120
    )
