"""Captions and edit instructions: the small language of the built-in model's world.

Generation is seeded and covers every surface form the domain page allows; parsing
turns grammar text back into typed specs for the checker and the evaluation. Text
outside the grammar parses to None; the model still renders something for it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from daguerre.models.builtin.scene import (
    BACKGROUNDS,
    COLOURS,
    JITTER_UNITS,
    POSITION_PHRASES,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
)

# ---------------------------------------------------------------------------
# Captions


@dataclass(frozen=True)
class ObjectSpec:
    """What a caption says about one object; ``size`` is None when the caption omits it."""

    colour: str
    shape: str
    position: str
    size: str | None = None


@dataclass(frozen=True)
class CaptionSpec:
    background: str
    objects: tuple[ObjectSpec, ...]


def spec_of(scene: Scene, *, with_sizes: bool = True) -> CaptionSpec:
    return CaptionSpec(
        scene.background,
        tuple(
            ObjectSpec(o.colour, o.shape, o.position, o.size if with_sizes else None)
            for o in scene.objects
        ),
    )


def object_phrase(spec: ObjectSpec) -> str:
    size = f"{spec.size} " if spec.size else ""
    return f"a {size}{spec.colour} {spec.shape} {POSITION_PHRASES[spec.position]}"


def join_phrases(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_text(spec: CaptionSpec, form: int = 0) -> str:
    objects = join_phrases([object_phrase(o) for o in spec.objects])
    if form == 0:
        return f"{objects}, on a {spec.background} background"
    return f"a {spec.background} background with {objects}"


def sample_caption(
    scene: Scene, rng: random.Random, *, size_word_p: float = 0.7
) -> tuple[str, CaptionSpec]:
    """A caption for ``scene`` in a random form; each size word is kept with ``size_word_p``."""
    spec = CaptionSpec(
        scene.background,
        tuple(
            ObjectSpec(
                o.colour, o.shape, o.position, o.size if rng.random() < size_word_p else None
            )
            for o in scene.objects
        ),
    )
    return caption_text(spec, rng.randrange(2)), spec


_COLOUR = "|".join(COLOURS)
_SHAPE = "|".join(SHAPES)
_SIZE = "|".join(SIZES)
_BG = "|".join(BACKGROUNDS)
_POSITION_BY_PHRASE = {phrase: name for name, phrase in POSITION_PHRASES.items()}
_POS = "|".join(re.escape(p) for p in _POSITION_BY_PHRASE)
_OBJECT_RE = re.compile(
    rf"an? (?:(?P<size>{_SIZE}) )?(?P<colour>{_COLOUR}) (?P<shape>{_SHAPE}) (?P<pos>{_POS})"
)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")


def split_object_list(text: str) -> list[str] | None:
    parts = [p.strip() for p in re.split(r",| and ", text)]
    return parts if all(parts) else None


def parse_object_phrase(text: str) -> ObjectSpec | None:
    m = _OBJECT_RE.fullmatch(text)
    if not m:
        return None
    return ObjectSpec(m["colour"], m["shape"], _POSITION_BY_PHRASE[m["pos"]], m["size"] or None)


def parse_caption(text: str) -> CaptionSpec | None:
    """The spec of a grammar caption, or None for anything outside the grammar or the world."""
    text = _normalise(text)
    m = re.fullmatch(rf"(?P<objs>.+), on an? (?P<bg>{_BG}) background", text) or re.fullmatch(
        rf"an? (?P<bg>{_BG}) background with (?P<objs>.+)", text
    )
    if not m:
        return None
    phrases = split_object_list(m["objs"])
    if phrases is None or not 1 <= len(phrases) <= 3:
        return None
    objects = [parse_object_phrase(p) for p in phrases]
    if any(o is None for o in objects):
        return None
    specs = tuple(o for o in objects if o is not None)
    # The world has distinct colours and positions; a caption that breaks that is not one of ours.
    if len({o.colour for o in specs}) != len(specs) or len({o.position for o in specs}) != len(
        specs
    ):
        return None
    return CaptionSpec(m["bg"], specs)


def scene_for(spec: CaptionSpec, rng: random.Random | None = None) -> Scene:
    """A concrete scene matching ``spec`` (sizes and jitter chosen from ``rng``, or fixed)."""
    objects = []
    for o in spec.objects:
        size = o.size or (rng.choice(tuple(SIZES)) if rng else "large")
        offset = (0, 0)
        if size == "small" and rng is not None:
            offset = (rng.choice(JITTER_UNITS), rng.choice(JITTER_UNITS))
        objects.append(SceneObject(o.colour, o.shape, size, o.position, offset))
    return Scene(spec.background, tuple(objects))


# ---------------------------------------------------------------------------
# Edit instructions

EDIT_KINDS: tuple[str, ...] = ("recolour", "shape", "move", "remove", "add", "background")


@dataclass(frozen=True)
class Edit:
    """One instruction. ``ref_colour`` is None when the object is named by its shape alone."""

    kind: str
    ref_shape: str | None = None
    ref_colour: str | None = None
    value: str | None = None  # new colour / shape / position / background
    added: ObjectSpec | None = None

    @property
    def ref(self) -> str:
        """The object as the instruction names it: "the red circle", "the circle"."""
        return f"the {self.ref_colour + ' ' if self.ref_colour else ''}{self.ref_shape}"

    def text(self) -> str:
        ref = self.ref
        if self.kind == "recolour":
            return f"make {ref} {self.value}"
        if self.kind == "shape":
            return f"make {ref} a {self.value}"
        if self.kind == "move":
            return f"move {ref} to {_MOVE_PHRASES[self.value or '']}"
        if self.kind == "remove":
            return f"remove {ref}"
        if self.kind == "add" and self.added is not None:
            return f"add {object_phrase(self.added)}"
        if self.kind == "background":
            return f"make the background {self.value}"
        raise ValueError(f"malformed edit {self!r}")


# "move ... to the left" reads better than "to on the left".
_MOVE_PHRASES = {
    "left": "the left",
    "right": "the right",
    "top": "the top",
    "bottom": "the bottom",
    "center": "the center",
}
_MOVE_BY_PHRASE = {v: k for k, v in _MOVE_PHRASES.items()}


class EditError(ValueError):
    """An instruction that does not apply to the scene (no such object, position taken...)."""


def resolve(scene: Scene, edit: Edit) -> int:
    """Index of the object the edit names."""
    hits = [
        i
        for i, o in enumerate(scene.objects)
        if o.shape == edit.ref_shape and (edit.ref_colour is None or o.colour == edit.ref_colour)
    ]
    if len(hits) != 1:
        raise EditError(f"{edit.text()!r} names {len(hits)} objects")
    return hits[0]


def apply_edit(scene: Scene, edit: Edit, rng: random.Random | None = None) -> Scene:
    """The scene after ``edit``. Objects keep their size; a moved small object keeps its offset."""
    objs = list(scene.objects)
    if edit.kind == "background":
        return Scene(edit.value or scene.background, scene.objects)
    if edit.kind == "add":
        assert edit.added is not None
        if len(objs) >= 3:
            raise EditError("a scene holds at most three objects")
        if edit.added.colour in {o.colour for o in objs}:
            raise EditError(f"there is already a {edit.added.colour} object")
        if edit.added.position in {o.position for o in objs}:
            raise EditError(f"the {edit.added.position} position is taken")
        new = scene_for(CaptionSpec(scene.background, (edit.added,)), rng).objects[0]
        return scene.with_objects([*objs, new])
    i = resolve(scene, edit)
    obj = objs[i]
    if edit.kind == "recolour":
        assert edit.value is not None
        if edit.value in {o.colour for j, o in enumerate(objs) if j != i}:
            raise EditError(f"another object is already {edit.value}")
        objs[i] = replace(obj, colour=edit.value)
    elif edit.kind == "shape":
        assert edit.value is not None
        objs[i] = replace(obj, shape=edit.value)
    elif edit.kind == "move":
        assert edit.value is not None
        if edit.value in {o.position for j, o in enumerate(objs) if j != i}:
            raise EditError(f"the {edit.value} position is taken")
        objs[i] = replace(obj, position=edit.value)
    elif edit.kind == "remove":
        if len(objs) == 1:
            raise EditError("a scene keeps at least one object")
        del objs[i]
    else:
        raise EditError(f"unknown edit kind {edit.kind!r}")
    return scene.with_objects(objs)


def expected_spec(after: Scene, edit: Edit) -> CaptionSpec:
    """What an edit's result must match: every object with its size, except an added object
    whose instruction left its size out (then either size is right, as in a caption)."""
    spec = spec_of(after)
    if edit.kind == "add" and edit.added is not None and edit.added.size is None:
        objects = tuple(
            replace(o, size=None) if o.colour == edit.added.colour else o for o in spec.objects
        )
        spec = CaptionSpec(spec.background, objects)
    return spec


def _reference(scene: Scene, i: int, rng: random.Random) -> tuple[str, str | None]:
    """Name object ``i`` by shape alone when unambiguous (half the time), else colour + shape."""
    obj = scene.objects[i]
    unique = sum(o.shape == obj.shape for o in scene.objects) == 1
    if unique and rng.random() < 0.5:
        return obj.shape, None
    return obj.shape, obj.colour


def possible_kinds(scene: Scene) -> list[str]:
    kinds = ["recolour", "shape", "background"]
    if len(scene.objects) < len(POSITIONS):
        kinds.append("move")
    if len(scene.objects) > 1:
        kinds.append("remove")
    if len(scene.objects) < 3:
        kinds.append("add")
    return kinds


def sample_edit(scene: Scene, rng: random.Random, kind: str | None = None) -> Edit:
    """A random instruction that applies to ``scene`` (of ``kind`` when given and possible)."""
    kinds = possible_kinds(scene)
    if kind is None:
        kind = rng.choice(kinds)
    elif kind not in kinds:
        raise EditError(f"no {kind} edit applies to this scene")
    used_colours = {o.colour for o in scene.objects}
    used_positions = {o.position for o in scene.objects}
    if kind == "background":
        background = rng.choice([b for b in BACKGROUNDS if b != scene.background])
        return Edit("background", value=background)
    if kind == "add":
        size = rng.choice([*SIZES, None])
        added = ObjectSpec(
            rng.choice([c for c in COLOURS if c not in used_colours]),
            rng.choice(SHAPES),
            rng.choice([p for p in POSITIONS if p not in used_positions]),
            size,
        )
        return Edit("add", added=added)
    i = rng.randrange(len(scene.objects))
    obj = scene.objects[i]
    shape, colour = _reference(scene, i, rng)
    value: str | None
    if kind == "recolour":
        value = rng.choice([c for c in COLOURS if c not in used_colours])
    elif kind == "shape":
        value = rng.choice([s for s in SHAPES if s != obj.shape])
    elif kind == "move":
        value = rng.choice([p for p in POSITIONS if p not in used_positions])
    else:
        value = None
    return Edit(kind, ref_shape=shape, ref_colour=colour, value=value)


_REF = rf"the (?:(?P<rc>{_COLOUR}) )?(?P<rs>{_SHAPE})"
_EDIT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("background", re.compile(rf"make the background (?P<v>{_BG})")),
    ("shape", re.compile(rf"make {_REF} an? (?P<v>{_SHAPE})")),
    ("recolour", re.compile(rf"make {_REF} (?P<v>{_COLOUR})")),
    ("move", re.compile(rf"move {_REF} to (?P<v>{'|'.join(_MOVE_BY_PHRASE)})")),
    ("remove", re.compile(rf"remove {_REF}")),
    ("add", re.compile(r"add (?P<obj>.+)")),
)


def parse_edit(text: str) -> Edit | None:
    """The typed form of a grammar instruction, or None."""
    text = _normalise(text)
    for kind, pattern in _EDIT_PATTERNS:
        m = pattern.fullmatch(text)
        if not m:
            continue
        if kind == "add":
            added = parse_object_phrase(m["obj"])
            return Edit("add", added=added) if added else None
        if kind == "background":
            return Edit("background", value=m["v"])
        value = _MOVE_BY_PHRASE[m["v"]] if kind == "move" else m.groupdict().get("v")
        return Edit(kind, ref_shape=m["rs"], ref_colour=m["rc"], value=value)
    return None
