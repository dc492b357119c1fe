"""Foreign edit sources: pictures of the domain page drawn by renderers other than ours.

Users upload pictures the model did not draw: another rasterization rule, anti-aliased
drawings, resized JPEGs. These renderers draw a ``Scene`` from the domain page alone
(units, colours, shapes, positions) and never call ``scene.render``, so the evaluation
measures how the model reads pictures that are right but not pixel-identical to its own.

HELD OUT OF TRAINING: ``train.py`` and ``data.py`` must never import this module (a test
checks it). A model that learned these renderers' quirks would pass the foreign-source
evaluation without having learned robustness.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import numpy as np
from PIL import Image

from daguerre.models.builtin.scene import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    SIZES,
    UNITS,
    Scene,
    SceneObject,
)

ForeignRenderer = Callable[[Scene, random.Random], Image.Image]


def _inside(obj: SceneObject, x: np.ndarray, y: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """Which sample points (in units, y down) lie inside ``obj``, from the domain page, with
    its half-width grown by ``grow`` units (negative: shrunk)."""
    px, py = POSITIONS[obj.position]
    cx, cy = px + obj.offset[0], py + obj.offset[1]
    half = SIZES[obj.size] / 2 + grow
    dx, dy = x - cx, y - cy
    if obj.shape == "circle":
        return np.asarray(np.hypot(dx, dy) <= half)
    if obj.shape == "square":
        return np.asarray(np.maximum(np.abs(dx), np.abs(dy)) <= half)
    if obj.shape == "triangle":
        # Apex at (cx, cy - half), base corners at (cx +- half, cy + half).
        depth = dy + half  # distance below the apex
        return np.asarray((depth >= 0) & (dy <= half) & (2 * np.abs(dx) <= depth))
    raise ValueError(f"unknown shape {obj.shape!r}")


def coverage_map(obj: SceneObject, resolution: int, sub: int, grow: float = 0.0) -> np.ndarray:
    """Fraction of each pixel covered by ``obj`` (grown by ``grow`` units), from ``sub`` x
    ``sub`` samples per pixel (``sub=1``: the pixel centre only). (res, res), float32."""
    n = resolution * sub
    coords = ((np.arange(n, dtype=np.float32) + 0.5) * (UNITS / n)).astype(np.float32)
    inside = _inside(obj, coords[None, :], coords[:, None], grow)
    return inside.reshape(resolution, sub, resolution, sub).mean(axis=(1, 3), dtype=np.float32)


def _composite(scene: Scene, resolution: int, alphas: list[np.ndarray]) -> np.ndarray:
    """Paint each object's alpha over the background, in order; RGB uint8."""
    out = np.empty((resolution, resolution, 3), np.float32)
    out[:] = BACKGROUNDS[scene.background]
    for obj, alpha in zip(scene.objects, alphas, strict=True):
        a = alpha[..., None]
        out = out * (1 - a) + np.asarray(COLOURS[obj.colour], np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# On our 64x64 grid, unit lines fall on pixel edges, so a plain half-coverage rule draws
# what the pixel-centre rule draws. Other tools also differ in where an edge falls: each
# picture grows every shape's edges by one of these amounts, in pixels.
COVERAGE_GROWTH_PX = (-0.5, 0.5, 1.0)
COVERAGE_SIZES = (64, 64, 96, 128)


def coverage(scene: Scene, rng: random.Random) -> Image.Image:
    """Hard edges by another rule: a pixel is inside when at least half of its 4x4
    subsamples are, with edges half a pixel narrower, or a half or a whole pixel wider."""
    resolution = rng.choice(COVERAGE_SIZES)
    grow = rng.choice(COVERAGE_GROWTH_PX) * UNITS / resolution
    alphas = [
        (coverage_map(o, resolution, 4, grow) >= 0.5).astype(np.float32) for o in scene.objects
    ]
    return Image.fromarray(_composite(scene, resolution, alphas))


def antialiased(scene: Scene, rng: random.Random) -> Image.Image:
    """8x8 supersampled, box-filtered, at 256x256: blended colours along every edge."""
    del rng  # deterministic; the signature is every renderer's
    resolution = 256
    alphas = [coverage_map(o, resolution, 8) for o in scene.objects]
    return Image.fromarray(_composite(scene, resolution, alphas))


RESIZE_FILTERS = (
    Image.Resampling.NEAREST,
    Image.Resampling.BILINEAR,
    Image.Resampling.LANCZOS,
)


def _shifted(image: Image.Image, dx: int, dy: int, fill: tuple[int, int, int]) -> Image.Image:
    """``image`` moved by (dx, dy) pixels, the uncovered edge filled with ``fill``."""
    out = Image.new("RGB", image.size, fill)
    out.paste(image, (dx, dy))
    return out


def jpeg_resized(scene: Scene, rng: random.Random) -> Image.Image:
    """Our hard-edge pixel-centre style at a random size in 64..1024, resized with a random
    filter to 64x64 (shifted by a pixel half the time) or another size in 64..1024, then
    saved as a JPEG of quality 75..95 and read back."""
    native = rng.randint(64, 1024)
    alphas = [coverage_map(o, native, 1) for o in scene.objects]
    image = Image.fromarray(_composite(scene, native, alphas))
    resample = rng.choice(RESIZE_FILTERS)
    if rng.random() < 0.5:
        image = image.resize((64, 64), resample)
        dx, dy = rng.choice([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy])
        image = _shifted(image, dx, dy, BACKGROUNDS[scene.background])
    else:
        side = rng.randint(64, 1024)
        image = image.resize((side, side), resample)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=rng.randint(75, 95))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


RENDERERS: dict[str, ForeignRenderer] = {
    "coverage": coverage,
    "antialiased": antialiased,
    "jpeg_resized": jpeg_resized,
}
