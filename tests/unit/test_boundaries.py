"""The dependency rules of DESIGN.md, checked on what a fresh interpreter imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.stack import REPO


def imported_by(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    "module", ["daguerre.gateway.app", "daguerre.engine.workflows", "daguerre.cli"]
)
def test_no_torch_models_or_workers(module: str) -> None:
    loaded = imported_by(module)
    assert "torch" not in loaded
    assert not any(m.startswith("daguerre.models") for m in loaded)
    assert not any(m.startswith("daguerre.workers") for m in loaded)
