"""Is a picture exactly a render of the scene asked for? The quick way to a verdict.

Checking every finished image with the full reader (connected regions, shape from fill
and taper) costs about 0.7 ms at 64×64: measured with ``bench/model.py --against``, that
alone took several percent off the batched peak. Most of the model's images are exactly
what our renderer draws for a scene the request allows (the patch patterns come from
those renders). Such an image is right by the domain's own definition, so it needs no
reading: each named colour's pixels are compared with the renderer's mask of the object
at every size and jitter the request leaves open, and every other pixel must be the
background. Anything else goes to the full checker, which decides.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from daguerre.models.builtin.grammar import CaptionSpec, ObjectSpec
from daguerre.models.builtin.scene import (
    JITTER_UNITS,
    PALETTE_NAMES,
    SIZES,
    SceneObject,
    object_mask,
)
from daguerre.models.builtin.tokens import NATIVE


@cache
def _masks(shape: str, size: str, position: str) -> tuple[np.ndarray, ...]:
    """The renderer's masks of an object at every offset it may take (small ones jitter)."""
    offsets = [(0, 0)]
    if size == "small":
        offsets = [(dx, dy) for dx in JITTER_UNITS for dy in JITTER_UNITS]
    return tuple(
        object_mask(SceneObject("red", shape, size, position, offset), NATIVE) for offset in offsets
    )


def _drawn_as_asked(pixels: np.ndarray, obj: ObjectSpec) -> bool:
    sizes = [obj.size] if obj.size else list(SIZES)
    return any(
        np.array_equal(pixels, mask)
        for size in sizes
        for mask in _masks(obj.shape, size, obj.position)
    )


def exactly(indices: np.ndarray, spec: CaptionSpec) -> bool:
    """True if native palette ``indices`` are exactly a render of ``spec`` (False means
    only "not exactly": the full checker may still accept it)."""
    if indices.shape != (NATIVE, NATIVE):
        return False
    counts = np.bincount(indices.ravel(), minlength=len(PALETTE_NAMES))
    named = [PALETTE_NAMES.index(o.colour) for o in spec.objects]
    background = PALETTE_NAMES.index(spec.background)
    if counts[background] + counts[named].sum() != indices.size:
        return False  # a colour the request does not name
    return all(
        _drawn_as_asked(indices == colour, obj)
        for colour, obj in zip(named, spec.objects, strict=True)
    )
