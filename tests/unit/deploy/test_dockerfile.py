"""The Dockerfile: multi-stage, non-root, torch chosen by a build argument, and an entrypoint
whose commands exist. No image is built here (no container daemon): the commands it runs are
run through this venv's `daguerre` instead, which is the same console script the image installs.
"""

from __future__ import annotations

import re
import tomllib

from tests.support.stack import REPO
from tests.unit.deploy.artifacts import (
    DOCKERFILE,
    dockerfile_instructions,
    final_stage,
    image_command,
    run_help,
)

INSTRUCTIONS = dockerfile_instructions(DOCKERFILE.read_text())


def test_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    froms = [args for word, args in INSTRUCTIONS if word == "FROM"]
    assert len(froms) >= 2
    users = [args for word, args in final_stage(INSTRUCTIONS) if word == "USER"]
    assert users, "the runtime stage must drop root"
    assert users[-1].split(":")[0] not in {"0", "root"}
    # Nothing of the build stage but the venv reaches the runtime image.
    copies = [a for w, a in final_stage(INSTRUCTIONS) if w == "COPY"]
    assert copies and all(a.startswith("--from=build") for a in copies)


def test_torch_variant_is_a_build_argument_and_the_pin_matches_the_package() -> None:
    args = [a for w, a in INSTRUCTIONS if w == "ARG"]
    assert "TORCH_VARIANT=cpu" in args
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("torch=="))
    assert f"TORCH_VERSION={pin.removeprefix('torch==')}" in args
    runs = " ".join(a for w, a in INSTRUCTIONS if w == "RUN")
    assert re.search(r"torch==\$\{TORCH_VERSION\}", runs)
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in runs
    # torch is installed before the package, so the package's resolver keeps that build.
    assert runs.index("TORCH_VERSION") < runs.index("pip install .")


def test_default_command_is_the_gateway_and_it_exists() -> None:
    argv = image_command()
    assert argv == ["daguerre", "gateway"]
    result = run_help(argv)
    assert result.returncode == 0, result.stderr
    assert "Serve the HTTP API" in result.stdout


def test_worker_command_of_the_image_exists() -> None:
    argv = image_command(["worker", "--pool", "chat"])
    result = run_help(argv)
    assert result.returncode == 0, result.stderr
    assert "--pool" in result.stdout


def test_a_misspelt_command_is_caught() -> None:
    # The check above means something only if a wrong command fails it.
    assert run_help(image_command(["gatewya"])).returncode != 0
