"""The built-in model's world: scenes of flat-coloured shapes, and a renderer for them.

The canvas is measured in units, 32 across, so one scene renders at any resolution.
Sampling is seeded (``random.Random``) so training data, tests and evaluation are
reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

UNITS = 32

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 70, 230),
    "yellow": (245, 215, 20),
    "purple": (150, 40, 190),
    "orange": (250, 130, 10),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: dict[str, int] = {"small": 6, "large": 10}
POSITIONS: dict[str, tuple[int, int]] = {
    "left": (6, 16),
    "right": (26, 16),
    "top": (16, 6),
    "bottom": (16, 26),
    "center": (16, 16),
}
POSITION_PHRASES: dict[str, str] = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}

# Every exact colour a scene can contain, backgrounds first. The patch tokenizer and
# the checker both index into this one list.
PALETTE_NAMES: tuple[str, ...] = (*BACKGROUNDS, *COLOURS)
PALETTE: np.ndarray = np.array(
    [*BACKGROUNDS.values(), *COLOURS.values()], dtype=np.uint8
)  # shape (9, 3)

# A small object may sit up to one unit off its nominal centre.
JITTER_UNITS = (-1, 0, 1)

# The 1/2/3-object mix used for training and the "mixed evenly" test set alike is a
# caller's choice; this is the training mix (three-object scenes are the hard ones).
TRAINING_OBJECT_MIX = (0.2, 0.4, 0.4)


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    size: str
    position: str
    offset: tuple[int, int] = (0, 0)

    @property
    def centre(self) -> tuple[int, int]:
        x, y = POSITIONS[self.position]
        return x + self.offset[0], y + self.offset[1]


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[SceneObject, ...]

    def with_objects(self, objects: Sequence[SceneObject]) -> Scene:
        return replace(self, objects=tuple(objects))


# A predicate over (colour, shape, position) used to hold combinations out of training.
ComboFilter = Callable[[str, str, str], bool]


def sample_object(
    rng: random.Random,
    *,
    colours: Sequence[str],
    positions: Sequence[str],
    allowed: ComboFilter | None = None,
) -> SceneObject | None:
    """One object from the free colours and positions, or None if the filter leaves none."""
    choices = [
        (c, s, p)
        for c in colours
        for s in SHAPES
        for p in positions
        if allowed is None or allowed(c, s, p)
    ]
    if not choices:
        return None
    colour, shape, position = rng.choice(choices)
    size = rng.choice(tuple(SIZES))
    offset = (0, 0)
    if size == "small":
        offset = (rng.choice(JITTER_UNITS), rng.choice(JITTER_UNITS))
    return SceneObject(colour, shape, size, position, offset)


def sample_scene(
    rng: random.Random,
    n_objects: int | None = None,
    *,
    mix: Sequence[float] = TRAINING_OBJECT_MIX,
    allowed: ComboFilter | None = None,
) -> Scene:
    """A random scene; objects have distinct colours and distinct positions."""
    if n_objects is None:
        n_objects = rng.choices((1, 2, 3), weights=mix)[0]
    while True:
        objects: list[SceneObject] = []
        for _ in range(n_objects):
            used_c = {o.colour for o in objects}
            used_p = {o.position for o in objects}
            obj = sample_object(
                rng,
                colours=[c for c in COLOURS if c not in used_c],
                positions=[p for p in POSITIONS if p not in used_p],
                allowed=allowed,
            )
            if obj is None:
                break
            objects.append(obj)
        if len(objects) == n_objects:
            return Scene(rng.choice(tuple(BACKGROUNDS)), tuple(objects))


def object_mask(obj: SceneObject, resolution: int) -> np.ndarray:
    """Boolean (res, res) mask of the pixels whose centres fall inside the object."""
    coords = (np.arange(resolution, dtype=np.float64) + 0.5) * (UNITS / resolution)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    cx, cy = obj.centre
    r = SIZES[obj.size] / 2
    if obj.shape == "circle":
        return np.asarray((x - cx) ** 2 + (y - cy) ** 2 <= r * r)
    if obj.shape == "square":
        return np.asarray((np.abs(x - cx) <= r) & (np.abs(y - cy) <= r))
    if obj.shape == "triangle":
        # Upright: apex at the top, flat base; the width grows linearly to 2r at the base.
        top = cy - r
        return np.asarray((y >= top) & (y <= cy + r) & (np.abs(x - cx) <= (y - top) / 2))
    raise ValueError(f"unknown shape {obj.shape!r}")


def render_indices(scene: Scene, resolution: int = 64) -> np.ndarray:
    """The scene as palette indices, shape (res, res), uint8: hard edges, objects in order."""
    out = np.full((resolution, resolution), PALETTE_NAMES.index(scene.background), np.uint8)
    for obj in scene.objects:
        out[object_mask(obj, resolution)] = PALETTE_NAMES.index(obj.colour)
    return out


def render(scene: Scene, resolution: int = 64) -> np.ndarray:
    """The scene as RGB pixels, shape (res, res, 3), uint8."""
    return PALETTE[render_indices(scene, resolution)]
