"""Plans (plans.py): other ways to the same scene, through the model's surest skills."""

from __future__ import annotations

from daguerre.models.builtin import grammar
from daguerre.models.builtin.plans import caption_plans, changed, edit_plans
from daguerre.models.builtin.scene import Scene, SceneObject

CIRCLE = SceneObject("red", "circle", "large", "left")
SQUARE = SceneObject("blue", "square", "small", "top", (1, 0))
TWO = Scene("white", (CIRCLE, SQUARE))


def test_a_caption_is_the_rest_then_add_the_one_left_out() -> None:
    spec = grammar.spec_of(TWO)
    plans = caption_plans(spec)
    assert len(plans) == 2
    for first, second in plans:
        assert not first.edit and second.edit
        rest = grammar.parse_caption(first.prompt)
        assert rest is not None and len(rest.objects) == 1
        added = grammar.parse_edit(second.prompt)
        assert added is not None and added.kind == "add" and added.added is not None
        assert {rest.objects[0], added.added} == set(spec.objects)
        assert second.editable is not None and second.editable.any()
    assert caption_plans(grammar.spec_of(Scene("white", (CIRCLE,)))) == ()


def test_a_shape_change_is_remove_then_add_as_it_must_end_up() -> None:
    edit = grammar.Edit("shape", ref_shape="circle", value="triangle")
    after = grammar.apply_edit(TWO, edit)
    ((remove, add),) = edit_plans(TWO, edit, after)
    assert remove.prompt == "remove the red circle" and remove.edit
    assert add.prompt == "add a large red triangle on the left" and add.edit
    # Each stage may touch only the left: the blue square's patches stay the source's.
    far = changed(TWO, TWO.with_objects([SQUARE]))
    assert remove.editable is not None and (remove.editable == far).all()
    assert not remove.editable.reshape(8, 8)[:, 6:].any()


def test_a_move_adds_the_object_at_its_new_place_with_its_size() -> None:
    edit = grammar.Edit("move", ref_shape="square", ref_colour="blue", value="bottom")
    after = grammar.apply_edit(TWO, edit)
    ((remove, add),) = edit_plans(TWO, edit, after)
    assert remove.prompt == "remove the blue square"
    assert add.prompt == "add a small blue square at the bottom"


def test_one_object_and_background_edits_draw_the_result_and_remove_add_have_none() -> None:
    alone = Scene("gray", (CIRCLE,))
    recolour = grammar.Edit("recolour", ref_shape="circle", value="green")
    ((stage,),) = edit_plans(alone, recolour, grammar.apply_edit(alone, recolour))
    assert not stage.edit
    assert stage.prompt == "a large green circle on the left, on a gray background"
    background = grammar.Edit("background", value="black")
    ((stage,),) = edit_plans(TWO, background, grammar.apply_edit(TWO, background))
    assert grammar.parse_caption(stage.prompt) == grammar.spec_of(
        grammar.apply_edit(TWO, background)
    )
    remove = grammar.Edit("remove", ref_shape="circle")
    assert edit_plans(TWO, remove, grammar.apply_edit(TWO, remove)) == ()
