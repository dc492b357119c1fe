"""How the built-in model reads a request before rendering: source pictures read back as
scenes (our own renders exactly, foreign renders to the right scene), captions and edit
instructions read into what the result must show, and the patches an edit may touch."""

from __future__ import annotations

import random

import numpy as np
import pytest

from daguerre.models.builtin import grammar
from daguerre.models.builtin.scene import Scene, SceneObject, object_mask, render, sample_scene
from daguerre.models.builtin.tokens import GRID, NATIVE, PATCH
from daguerre.models.builtin.training.foreign import RENDERERS
from daguerre.models.builtin.understanding import (
    canonical_indices,
    read_instruction,
    read_prompt,
    read_source,
)

RED_CIRCLE = SceneObject("red", "circle", "large", "left")
BLUE_SQUARE = SceneObject("blue", "square", "small", "right", (0, 1))
FIXED = Scene("white", (RED_CIRCLE, BLUE_SQUARE))


def same_scene(a: Scene | None, b: Scene, *, offsets: bool = True) -> bool:
    """Scene equality up to the order of objects (a reading lists them largest first; the
    world's objects never overlap, so their order draws the same picture)."""
    if a is None or a.background != b.background:
        return False

    def key(o: SceneObject) -> tuple[object, ...]:
        return (o.colour, o.shape, o.size, o.position, o.offset if offsets else None)

    return sorted(map(key, a.objects), key=str) == sorted(map(key, b.objects), key=str)


# ---------------------------------------------------------------------------
# Source pictures


@pytest.mark.parametrize("resolution", [64, 512])
def test_our_own_renders_read_back_exactly(resolution: int) -> None:
    rng = random.Random(resolution)
    for _ in range(200):
        scene = sample_scene(rng)
        got = read_source(render(scene, resolution))
        assert same_scene(got, scene), (scene, got)
        assert got is not None
        assert (canonical_indices(got) == canonical_indices(scene)).all()


def test_read_source_takes_a_pil_image_too() -> None:
    from PIL import Image

    assert same_scene(read_source(Image.fromarray(render(FIXED, 256))), FIXED)


def test_a_picture_outside_the_world_reads_as_no_scene() -> None:
    blank = np.full((64, 64, 3), 255, np.uint8)
    assert read_source(blank) is None  # no object at all
    two_reds = Scene("white", (RED_CIRCLE, SceneObject("red", "square", "large", "right")))
    assert read_source(render(two_reds)) is None  # a colour twice


# jpeg_resized shifts half of its 64 px pictures by a whole pixel (half a unit), so a small
# object's one-unit offset is not in the picture any more; the rest must read right.
EXACT_OFFSETS = {"coverage": True, "antialiased": True, "jpeg_resized": False}


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_foreign_sources_read_as_the_right_scene(name: str) -> None:
    rng = random.Random(0)
    n, right = 200, 0
    for _ in range(n):
        scene = sample_scene(rng)
        got = read_source(RENDERERS[name](scene, rng))
        right += same_scene(got, scene, offsets=EXACT_OFFSETS[name])
    rate = right / n
    assert rate >= 0.99, f"{name}: {right}/{n} read right ({rate:.1%})"


# ---------------------------------------------------------------------------
# Prompts


def test_a_grammar_caption_reads_as_its_spec_in_plain_form() -> None:
    rng = random.Random(3)
    for _ in range(50):
        text, spec = grammar.sample_caption(sample_scene(rng), rng)
        reading = read_prompt(text)
        assert reading.expected == spec
        assert reading.revised_prompt == grammar.caption_text(spec)
        assert not reading.unchanged and reading.editable is None


def test_caption_text_is_normalised() -> None:
    reading = read_prompt("  A GRAY background with   a Red Circle on the left.")
    assert reading.revised_prompt == "a red circle on the left, on a gray background"
    assert reading.expected == grammar.CaptionSpec(
        "gray", (grammar.ObjectSpec("red", "circle", "left"),)
    )


@pytest.mark.parametrize("prompt", ["a cat wearing a hat", "", "a red circle"])
def test_free_text_has_no_reading(prompt: str) -> None:
    reading = read_prompt(prompt)
    assert reading.revised_prompt is None and reading.expected is None


# ---------------------------------------------------------------------------
# Edit instructions


@pytest.mark.parametrize(
    ("instruction", "words"),
    [
        ("make the circle green", "recolour: the red circle → green"),
        ("make the blue square a triangle", "change shape: the blue square → triangle"),
        ("move the square to the top", "move: the blue square → the top"),
        ("remove the red circle", "remove: the red circle"),
        ("add a small purple circle at the bottom", "add: a small purple circle at the bottom"),
        ("make the background black", "background → black"),
    ],
)
def test_each_edit_kind_reads_as_what_it_does(instruction: str, words: str) -> None:
    reading = read_instruction(instruction, FIXED)
    edit = grammar.parse_edit(instruction)
    assert edit is not None
    assert reading.revised_prompt == words
    assert not reading.unchanged
    assert reading.expected == grammar.expected_spec(grammar.apply_edit(FIXED, edit), edit)
    if edit.kind == "background":
        assert reading.editable is None  # every pixel of the background may change
    else:
        assert reading.editable is not None and reading.editable.shape == (GRID * GRID,)


def test_an_added_object_without_a_size_may_come_in_either_size() -> None:
    reading = read_instruction("add a purple circle at the bottom", FIXED)
    assert reading.revised_prompt == "add: a purple circle at the bottom"
    assert reading.expected is not None
    sizes = {o.colour: o.size for o in reading.expected.objects}
    assert sizes == {"red": "large", "blue": "small", "purple": None}


@pytest.mark.parametrize(
    ("scene", "instruction", "why"),
    [
        (FIXED, "remove the green circle", "there is no green circle in the picture"),
        (FIXED, "make the triangle red", "there is no triangle in the picture"),
        (
            Scene(
                "white",
                (
                    SceneObject("blue", "circle", "large", "left"),
                    SceneObject("yellow", "circle", "small", "right"),
                ),
            ),
            "make the circle red",
            "there are 2 circles in the picture; name one by its colour",
        ),
        (FIXED, "move the blue square to the left", "the left position is taken"),
        (FIXED, "make the circle blue", "another object is already blue"),
        (Scene("white", (RED_CIRCLE,)), "remove the circle", "a scene keeps at least one object"),
    ],
)
def test_an_instruction_that_cannot_apply_changes_nothing_and_says_why(
    scene: Scene, instruction: str, why: str
) -> None:
    reading = read_instruction(instruction, scene)
    assert reading.unchanged
    assert reading.revised_prompt == f"nothing changed: {why}"
    assert reading.expected is None and reading.editable is None


def test_an_unreadable_source_still_reads_the_instruction() -> None:
    reading = read_instruction("make the circle green", None)
    assert reading.revised_prompt == "recolour: the circle → green"
    assert reading.expected is None and reading.editable is None and not reading.unchanged


def test_free_text_instruction_has_no_reading() -> None:
    reading = read_instruction("make it prettier", FIXED)
    assert reading.revised_prompt is None and reading.expected is None and not reading.unchanged


def patches_of(obj: SceneObject) -> np.ndarray:
    """(64,) bool: the patches any pixel of ``obj`` falls in."""
    mask = object_mask(obj, NATIVE)
    return np.asarray(mask.reshape(GRID, PATCH, GRID, PATCH).any(axis=(1, 3)).reshape(-1))


@pytest.mark.parametrize(
    ("instruction", "changed", "untouched"),
    [
        ("make the circle green", [RED_CIRCLE], BLUE_SQUARE),
        ("make the circle a square", [RED_CIRCLE], BLUE_SQUARE),
        ("remove the red circle", [RED_CIRCLE], BLUE_SQUARE),
        ("make the square orange", [BLUE_SQUARE], RED_CIRCLE),
        (
            "move the red circle to the bottom",
            [RED_CIRCLE, SceneObject("red", "circle", "large", "bottom")],
            BLUE_SQUARE,
        ),
        ("add a large yellow triangle on the right", [], RED_CIRCLE),
    ],
)
def test_editable_patches_cover_the_changed_object_and_not_a_far_one(
    instruction: str, changed: list[SceneObject], untouched: SceneObject
) -> None:
    scene = FIXED
    if instruction.startswith("add"):
        scene = Scene("white", (RED_CIRCLE,))
        changed = [SceneObject("yellow", "triangle", "large", "right")]
    reading = read_instruction(instruction, scene)
    assert reading.editable is not None and not reading.unchanged
    for obj in changed:
        covered = patches_of(obj)
        assert (reading.editable[covered]).all(), f"{obj} not editable"
    assert not reading.editable[patches_of(untouched)].any(), f"{untouched} editable"
