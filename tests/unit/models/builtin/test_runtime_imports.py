"""Serving the built-in model needs none of the code that trained or scores it."""

import json
import subprocess
import sys

RENDER = (
    "import sys, json; from daguerre.models.registry import create_model; "
    "from daguerre.models.base import RenderRequest, render; "
    "m = create_model('builtin'); m.setup('cpu'); render(m, [RenderRequest('a red circle')]); "
    "print(json.dumps(sorted(sys.modules)))"
)


def test_rendering_imports_no_training_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RENDER], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout))
    assert "daguerre.models.builtin.backend" in loaded  # the check below can fail
    assert not any(name.startswith("daguerre.models.builtin.training") for name in loaded)
