"""Other ways to the same picture, for a request the model keeps getting wrong.

Some requests miss seed after seed, at any temperature: measured on 300 three-object
captions, 8 of the 18 first-attempt misses were never right in 8 more tries at 0.3, 0.6,
1.0 or 1.5 (a large square in the center beside another large object, mostly); and a
shape change is sometimes a confident copy of the source. The model's surest skills are
one- and two-object captions and the ``remove`` and ``add`` edits (100% on the
evaluation's sets), so a plan reaches the same scene through them:

- a caption of n objects: the caption without one of them, then ``add`` that one;
- a recolour, shape change or move: ``remove`` the object, then ``add`` it as it must
  end up (or, when it is the only object, the caption of the result);
- a background change: the caption of the result.

Every stage is the model's own render; the last stage's result is checked like any other
attempt (verify.py). Plans are plain data: the prompts, and the patches each edit stage
may change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daguerre.models.builtin import grammar
from daguerre.models.builtin.scene import SIZES, UNITS, Scene
from daguerre.models.builtin.tokens import NATIVE, patches_touched


@dataclass(frozen=True)
class Stage:
    """One render of a plan: from ``prompt`` alone, or (``edit``) as an edit of the
    previous stage's result, or of the request's source for a first stage."""

    prompt: str
    edit: bool
    editable: np.ndarray | None = None  # (64,) patches an edit stage may change


Plan = tuple[Stage, ...]


def caption_plans(spec: grammar.CaptionSpec) -> tuple[Plan, ...]:
    """For each object of a caption with two or more: the rest first, then add it."""
    if len(spec.objects) < 2:
        return ()
    plans = []
    for dropped in spec.objects:
        rest = grammar.CaptionSpec(spec.background, tuple(o for o in spec.objects if o != dropped))
        before = grammar.scene_for(rest)
        after = grammar.scene_for(spec)
        plans.append(
            (
                Stage(grammar.caption_text(rest), edit=False),
                Stage(f"add {grammar.object_phrase(dropped)}", True, changed(before, after)),
            )
        )
    # The object drawn last first: it is the one most often wrong (drawn over the others).
    return tuple(reversed(plans))


def edit_plans(source: Scene, edit: grammar.Edit, after: Scene) -> tuple[Plan, ...]:
    """Another way to ``after`` from ``source``, or none for edits that rarely miss."""
    result_caption = Stage(grammar.caption_text(grammar.spec_of(after)), edit=False)
    if edit.kind == "background":
        return ((result_caption,),)
    if edit.kind not in ("recolour", "shape", "move"):
        return ()
    target = source.objects[grammar.resolve(source, edit)]
    if len(source.objects) == 1:
        return ((result_caption,),)
    # The object as it must end up: the one in ``after`` that is not in ``source``.
    (new,) = set(after.objects) - set(source.objects)
    without = source.with_objects([o for o in source.objects if o != target])
    spec = grammar.ObjectSpec(new.colour, new.shape, new.position, new.size)
    remove = f"remove the {target.colour} {target.shape}"
    add = f"add {grammar.object_phrase(spec)}"
    return (
        (
            Stage(remove, True, changed(source, without)),
            Stage(add, True, changed(without, after)),
        ),
    )


def changed(before: Scene, after: Scene) -> np.ndarray:
    """Patches an edit from ``before`` to ``after`` may touch: around every object it
    removes, adds or alters, wide enough for either size and a unit of jitter. The rest is
    copied from the source, so an edit cannot change the wrong object (the commonest miss
    once the source is read right: "make the blue square a circle" turning the red square
    round)."""
    area = np.zeros((NATIVE, NATIVE), bool)
    per_unit = NATIVE // UNITS
    for obj in set(before.objects) ^ set(after.objects):
        cx, cy = obj.centre
        half = max(SIZES.values()) / 2 + 1  # the larger size, and a unit of jitter
        x0, x1 = int((cx - half) * per_unit), int(np.ceil((cx + half) * per_unit))
        y0, y1 = int((cy - half) * per_unit), int(np.ceil((cy + half) * per_unit))
        area[max(0, y0) : y1, max(0, x0) : x1] = True
    return patches_touched(area)
