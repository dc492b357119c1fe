"""The quick verdict (exact.py): an exact render of the asked scene, or not."""

from __future__ import annotations

import random

import numpy as np

from daguerre.models.builtin import checker, grammar
from daguerre.models.builtin.exact import exactly
from daguerre.models.builtin.reading import read_indices
from daguerre.models.builtin.scene import (
    PALETTE_NAMES,
    Scene,
    SceneObject,
    render_indices,
    sample_scene,
)


def test_every_render_of_the_asked_scene_is_exact_with_or_without_sizes() -> None:
    rng = random.Random(4)
    for _ in range(400):
        scene = sample_scene(rng)
        for with_sizes in (True, False):
            assert exactly(render_indices(scene), grammar.spec_of(scene, with_sizes=with_sizes))


def test_a_wrong_attribute_or_a_stray_pixel_is_not_exact() -> None:
    obj = SceneObject("red", "circle", "small", "left", (1, -1))
    scene = Scene("white", (obj, SceneObject("blue", "square", "large", "center")))
    spec = grammar.spec_of(scene)
    indices = render_indices(scene)
    assert exactly(indices, spec)
    for wrong in (
        grammar.spec_of(scene.with_objects([SceneObject("red", "square", "small", "left")])),
        grammar.CaptionSpec("black", spec.objects),
        grammar.CaptionSpec(spec.background, (spec.objects[0],)),
        grammar.CaptionSpec(
            spec.background,
            (spec.objects[0], grammar.ObjectSpec("blue", "square", "center", "small")),
        ),
    ):
        assert not exactly(indices, wrong), wrong
    speck = indices.copy()
    speck[0, 0] = PALETTE_NAMES.index("green")  # a colour nobody asked for
    assert not exactly(speck, spec)
    fringe = indices.copy()
    fringe[32, 30] = PALETTE_NAMES.index("red")  # the red object's colour, in the wrong place
    assert not exactly(fringe, spec)


def test_exact_never_passes_what_the_checker_fails() -> None:
    """Damaged renders: whatever exact accepts, the full checker accepts too."""
    rng = np.random.default_rng(2)
    scenes = random.Random(9)
    for _ in range(300):
        scene = sample_scene(scenes)
        spec = grammar.spec_of(scene, with_sizes=False)
        indices = render_indices(scene)
        for _ in range(int(rng.integers(0, 4))):
            y, x = rng.integers(0, 64, size=2)
            indices[y, x] = rng.integers(0, len(PALETTE_NAMES))
        if exactly(indices, spec):
            assert checker.judge(read_indices(indices), spec).ok
