"""What a request asks of the built-in model, read before it renders.

A prompt in the caption grammar gives the scene the result must show; an instruction in
the edit grammar, applied to the scene read from the source picture, gives the scene the
edit must produce. Either is a ``Reading``: what the model understood (OpenAI's
``revised_prompt``) and what its result can be checked against (``verify.py``). Text
outside the grammar has no reading to check; the model still renders something for it.

A source picture is read back as a scene (``reading.py``, classical image analysis) and,
when that reading is a valid scene of the world, drawn again by our own renderer
(``canonical_indices``): whatever rasterization rule, anti-aliasing, JPEG or resizing the
upload went through, the model then sees a picture of the kind it was trained on.
Without this, the token encoder maps unfamiliar edges to the nearest pattern it knows,
and edits of foreign pictures went wrong half the time (docs/model.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daguerre.models.builtin import grammar
from daguerre.models.builtin.plans import Plan, caption_plans, changed, edit_plans
from daguerre.models.builtin.reading import DetectedObject, ReadScene, read_indices, read_scene
from daguerre.models.builtin.scene import (
    COLOURS,
    JITTER_UNITS,
    POSITIONS,
    Scene,
    SceneObject,
    render_indices,
)
from daguerre.models.builtin.tokens import NATIVE


@dataclass(frozen=True)
class Reading:
    """How the model read one request.

    ``revised_prompt`` says it in words. ``expected`` is what a right result shows (None
    when the text is outside the grammar, or the source could not be read). ``unchanged``
    means the instruction cannot apply to the picture (it names nothing there, or the
    place it names is taken): the source comes back as it is, and ``revised_prompt`` says
    why.
    """

    revised_prompt: str | None
    expected: grammar.CaptionSpec | None = None
    unchanged: bool = False
    # (64,) bool per patch: where an edit may change the picture (None: anywhere).
    editable: np.ndarray | None = None
    # Other ways to the expected scene, for a request that keeps missing (plans.py).
    plans: tuple[Plan, ...] = ()


def scene_of(read: ReadScene) -> Scene | None:
    """The world's scene that ``read`` describes, or None if it is not one (a region too
    far from any place, a colour twice, a position twice, more than three objects)."""
    objects = [_snapped(o) for o in read.objects]
    if read.foreign_regions or not 1 <= len(objects) <= 3 or None in objects:
        return None
    out = [o for o in objects if o is not None]
    if len({o.colour for o in out}) != len(out) or len({o.position for o in out}) != len(out):
        return None
    return Scene(read.background, tuple(out))


def _snapped(o: DetectedObject) -> SceneObject | None:
    """The world's object nearest to a detected region.

    The checker leaves a doubtful region unrecognised, so that a wrong result never
    passes; a source picture is read more boldly, to the nearest shape and size, because
    a blurred small circle (a JPEG at 64×64 fills 0.88 of its box) is still a circle to
    the user who uploaded it. Misreads measured before snapping: 17 of 300 such sources.
    """
    if o.colour not in COLOURS:
        return None
    position = o.position or _nearest_position(o.centre)
    if position is None:
        return None
    shape = o.shape or _nearest_shape(o.fill, o.taper)
    size = o.size or ("small" if max(o.extent) < SNAP_SIZE_SPLIT else "large")
    offset = (0, 0)
    if size == "small":
        # A small object may sit a unit off its place; keep where the picture put it.
        px, py = POSITIONS[position]
        offset = (_jitter(o.centre[0] - px), _jitter(o.centre[1] - py))
    return SceneObject(o.colour, shape, size, position, offset)


# Between the small (6 units) and large (10) sizes; a triangle's blurred apex reads short.
SNAP_SIZE_SPLIT = 8.0
# Fill ratio halfway between a circle (pi/4) and a square (1); taper below which a region
# narrows towards the top like the upright triangle (about 0.2; circle and square 1).
SNAP_SQUARE_FILL = 0.89
SNAP_TRIANGLE_TAPER = 0.5
# How far (units) a region's centre may sit from the nearest place and still be there.
SNAP_POSITION_UNITS = 4.0


def _nearest_shape(fill: float, taper: float) -> str:
    if taper < SNAP_TRIANGLE_TAPER:
        return "triangle"
    return "square" if fill >= SNAP_SQUARE_FILL else "circle"


def _nearest_position(centre: tuple[float, float]) -> str | None:
    name, (px, py) = min(
        POSITIONS.items(), key=lambda kv: (kv[1][0] - centre[0]) ** 2 + (kv[1][1] - centre[1]) ** 2
    )
    near = max(abs(px - centre[0]), abs(py - centre[1])) <= SNAP_POSITION_UNITS
    return name if near else None


def _jitter(delta: float) -> int:
    return int(np.clip(round(delta), min(JITTER_UNITS), max(JITTER_UNITS)))


def read_source(image: object) -> Scene | None:
    """The scene in a source picture (PIL image or HxWx3 array), or None if unreadable."""
    return scene_of(read_scene(image))


def read_indices_scene(indices: np.ndarray) -> Scene | None:
    """``read_source`` of native palette indices (the model's own pictures), without going
    through RGB and back."""
    return scene_of(read_indices(indices))


def canonical_indices(scene: Scene) -> np.ndarray:
    """The scene as our renderer draws it at the native size (palette indices)."""
    return render_indices(scene, NATIVE)


# ---------------------------------------------------------------------------
# Prompts


def read_prompt(prompt: str) -> Reading:
    """A generation's reading: the caption in its plain form, and the scene to check."""
    spec = grammar.parse_caption(prompt)
    if spec is None:
        return Reading(None)
    return Reading(grammar.caption_text(spec), spec, plans=caption_plans(spec))


def describe(scene: Scene) -> str:
    """A caption of ``scene`` (what a picture outside the grammar came out as)."""
    return grammar.caption_text(grammar.spec_of(scene, with_sizes=True))


def read_instruction(prompt: str, source: Scene | None) -> Reading:
    """An edit's reading, given the scene of its source (None if it could not be read)."""
    edit = grammar.parse_edit(prompt)
    if edit is None:
        return Reading(None)
    if source is None:
        return Reading(_edit_words(edit, None))
    try:
        after = grammar.apply_edit(source, edit)
    except grammar.EditError as err:
        return Reading(f"nothing changed: {_why_not(source, edit, err)}", unchanged=True)
    target = None if edit.kind in ("add", "background") else grammar.resolve(source, edit)
    return Reading(
        _edit_words(edit, None if target is None else source.objects[target]),
        grammar.expected_spec(after, edit),
        editable=None if edit.kind == "background" else changed(source, after),
        plans=edit_plans(source, edit, after),
    )


def _edit_words(edit: grammar.Edit, target: SceneObject | None) -> str:
    """``recolour: the red circle → green``: the instruction as read, naming the object it
    resolved to by colour and shape even when the instruction named only its shape."""
    ref = f"the {target.colour} {target.shape}" if target is not None else edit.ref
    if edit.kind == "recolour":
        return f"recolour: {ref} → {edit.value}"
    if edit.kind == "shape":
        return f"change shape: {ref} → {edit.value}"
    if edit.kind == "move":
        return f"move: {ref} → the {edit.value}"
    if edit.kind == "remove":
        return f"remove: {ref}"
    if edit.kind == "add" and edit.added is not None:
        return f"add: {grammar.object_phrase(edit.added)}"
    return f"background → {edit.value}"


def _why_not(source: Scene, edit: grammar.Edit, err: grammar.EditError) -> str:
    """Why an instruction does not apply, in the user's terms."""
    if edit.kind not in ("add", "background"):
        named = [
            o
            for o in source.objects
            if o.shape == edit.ref_shape and edit.ref_colour in (None, o.colour)
        ]
        ref = f"{edit.ref_colour + ' ' if edit.ref_colour else ''}{edit.ref_shape}"
        if not named:
            return f"there is no {ref} in the picture"
        if len(named) > 1:
            return f"there are {len(named)} {ref}s in the picture; name one by its colour"
    return str(err)
