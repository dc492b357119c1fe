"""The evaluation's foreign renderers: right pictures of the scene by the checker's reading,
yet not our renderer's pixels, and never reachable from training."""

from __future__ import annotations

import ast
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from daguerre.models.builtin import checker
from daguerre.models.builtin.scene import Scene, SceneObject, render, sample_scene
from daguerre.models.builtin.training.foreign import RENDERERS, coverage_map
from tests.support.stack import REPO

TRAINING = REPO / "src/daguerre/models/builtin/training"


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_the_checker_reads_each_renderers_picture_as_its_scene(name: str) -> None:
    rng = random.Random(7)
    scenes = [sample_scene(rng) for _ in range(40)]
    pictures = [RENDERERS[name](scene, rng) for scene in scenes]
    assert all(isinstance(p, Image.Image) and p.mode == "RGB" for p in pictures)
    right = sum(checker.check_scene(p, s).ok for p, s in zip(pictures, scenes, strict=True))
    # JPEG at 64x64 blurs a small shape now and then past what the checker reads.
    assert right >= 36, f"{name}: {right}/40 read right"


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_each_renderer_differs_from_ours_pixel_wise(name: str) -> None:
    rng = random.Random(3)
    differing = 0
    for _ in range(10):
        scene = sample_scene(rng)
        picture = RENDERERS[name](scene, rng)
        side = picture.size[0]
        ours = render(scene, side)
        differing += int((np.asarray(picture) != ours).any(-1).sum() > 0)
    assert differing >= 8


def test_a_grown_coverage_edge_is_a_pixel_wider_than_ours() -> None:
    obj = SceneObject("red", "square", "small", "center")
    ours = (render(Scene("white", (obj,)), 64) != 255).any(-1)
    wider = coverage_map(obj, 64, 4, grow=0.5) >= 0.5  # half a unit: one pixel at 64x64
    assert ours.sum() == 12 * 12 and wider.sum() == 14 * 14
    assert (wider | ours).sum() == wider.sum()


def test_antialiased_pictures_blend_colours_at_edges() -> None:
    scene = Scene("white", (SceneObject("blue", "circle", "large", "center"),))
    pixels = np.asarray(RENDERERS["antialiased"](scene, random.Random(0))).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert (255, 255, 255) in colours and (30, 70, 230) in colours
    assert len(colours) > 10  # in-between shades along the edge


def _imports(path: str) -> set[str]:
    tree = ast.parse((TRAINING / path).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("path", ["train.py", "data.py"])
def test_training_never_imports_the_foreign_renderers(path: str) -> None:
    assert not any(name.endswith("foreign") for name in _imports(path))


def test_importing_training_does_not_load_the_foreign_renderers() -> None:
    code = (
        "import sys, daguerre.models.builtin.training.train, daguerre.models.builtin.training.data;"
        "print('daguerre.models.builtin.training.foreign' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"
