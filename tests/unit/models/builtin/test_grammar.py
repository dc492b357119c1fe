import random

import pytest

from daguerre.models.builtin import grammar
from daguerre.models.builtin.scene import Scene, SceneObject, sample_scene


def test_captions_parse_back_to_their_spec() -> None:
    rng = random.Random(1)
    for _ in range(500):
        text, spec = grammar.sample_caption(sample_scene(rng), rng)
        assert grammar.parse_caption(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a cat on a mat",
        "a red circle on the left",  # no background
        "a red circle on the left and a red square on the right, on a white background",
        "a pink circle on the left, on a white background",
    ],
)
def test_text_outside_the_grammar_or_world_parses_to_none(text: str) -> None:
    assert grammar.parse_caption(text) is None


def test_edits_render_and_parse_back() -> None:
    rng = random.Random(2)
    for _ in range(500):
        scene = sample_scene(rng)
        edit = grammar.sample_edit(scene, rng)
        assert grammar.parse_edit(edit.text()) == edit
        after = grammar.apply_edit(scene, edit, rng)
        assert 1 <= len(after.objects) <= 3
        assert len({o.colour for o in after.objects}) == len(after.objects)
        assert len({o.position for o in after.objects}) == len(after.objects)


def test_edit_semantics() -> None:
    circle = SceneObject("red", "circle", "small", "left", (1, 0))
    square = SceneObject("blue", "square", "large", "top")
    scene = Scene("white", (circle, square))
    moved = grammar.apply_edit(scene, grammar.parse_edit("move the circle to the right"))  # type: ignore[arg-type]
    assert moved.objects[0].position == "right" and moved.objects[0].size == "small"
    removed = grammar.apply_edit(scene, grammar.parse_edit("remove the blue square"))  # type: ignore[arg-type]
    assert removed.objects == (circle,)
    with pytest.raises(grammar.EditError):
        grammar.apply_edit(scene, grammar.parse_edit("make the circle blue"))  # type: ignore[arg-type]


def test_an_added_object_without_a_size_word_may_have_either_size() -> None:
    scene = Scene("white", (SceneObject("red", "circle", "small", "left"),))
    said = grammar.parse_edit("add a large blue square on the right")
    unsaid = grammar.parse_edit("add a blue square on the right")
    assert said is not None and unsaid is not None
    after = grammar.apply_edit(scene, unsaid, random.Random(0))
    spec = grammar.expected_spec(after, unsaid)
    assert spec.objects[0].size == "small"  # untouched objects keep their size
    assert spec.objects[1].size is None
    assert grammar.expected_spec(grammar.apply_edit(scene, said), said).objects[1].size == "large"
