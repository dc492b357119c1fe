"""Read a scene back from pixels, with classical image analysis (what ``checker`` judges).

The model is scored through this module, so it must not trust the model: it looks only at pixels.
The steps are the ones the domain page fixes:

1. Sample an image larger than 128 px down to 64 px, nearest-neighbour at pixel centres. The
   world is 32 units across, so 2 px per unit already tells sizes (6 vs 10 units), positions
   (10 units apart) and shapes apart, and one set of pixel rules then serves every
   resolution. Sampling (not averaging) keeps colours unblended, and it thins out the one-
   or two-pixel fringes that JPEG and smooth upscaling leave along edges.
2. Map every pixel to its nearest palette colour (luma-weighted, see palette_indices).
3. The background is the most common background-palette colour.
4. Label 4-connected regions of one colour that are not background. A region counts only if
   it is big enough *and* thick enough (enough pixels whose four neighbours share its
   colour), so specks and thin edge fringes are ignored however long they are. Object-colour
   regions are objects; a solid region in another background colour is "foreign" and fails
   any check (a true render never has one).
5. An object's shape comes from its fill ratio and width profile, its size from its extent,
   and its position from the centre of its bounding box (for a triangle, unlike the
   centroid, that is the nominal centre).

Each threshold below sits between what exact renders measure (noted beside it, over every
shape, size, jitter and position at 64..1024 px) and what the nearest wrong reading would
measure, with a gap between classes that reads as "unrecognised": a doubtful region fails
the check rather than passing as the wrong thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from daguerre.models.builtin.scene import (
    BACKGROUNDS,
    PALETTE,
    PALETTE_NAMES,
    POSITIONS,
    SIZES,
    UNITS,
)

# Images larger than this are sampled down to WORK_RES; smaller ones are read as they are.
MAX_NATIVE = 128
WORK_RES = 64

N_BACKGROUNDS = len(BACKGROUNDS)
# RGB to YCbCr (BT.601, as JPEG uses), with the luma row scaled so luma counts 4x in the
# squared colour distance; see palette_indices.
_YCC = np.array(
    [
        [0.299 * 2, 0.587 * 2, 0.114 * 2],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
_METRIC = _YCC.T @ _YCC
_PALETTE_GRAM = _METRIC @ PALETTE.T.astype(np.float64)  # (3, 9)
_PALETTE_NORM = (PALETTE.astype(np.float64) @ _PALETTE_GRAM).diagonal().copy()  # (9,)

# A region is an object only with this much area and this much core (pixels whose four
# neighbours share its colour), in units². The smallest object, a small triangle, has 18 unit²
# and 10 of core at 64 px; specks and one- or two-pixel-wide fringes have almost no core.
MIN_AREA_UNITS2 = 5.0
MIN_CORE_UNITS2 = 2.0

# Size: width and height both within this many units of 6 (small) or 10 (large). Renders
# measure 5.5..6 and 9.5..10 (a triangle's apex row may fall between pixel centres).
SIZE_TOLERANCE = 1.5
# Position: the box centre within this many units, per axis, of a nominal centre (10 units
# apart). Renders measure at most 0.25 off, plus the 1-unit jitter of small objects.
POSITION_TOLERANCE = 2.0
# Every shape has a square bounding box.
MAX_ASPECT = 1.3
# Fill ratio of the bounding box: square 1 (renders 1.0), circle pi/4 (renders 0.78..0.81),
# upright triangle 1/2 (renders 0.51..0.55). Taper: mean width of the top third of the rows
# over that of the bottom third: square 1, circle 1 (renders 0.89..1.13), upright triangle
# about 0.2 (renders 0.22..0.25), an inverted one about 5. Circle and triangle fill ranges
# may overlap because their tapers never do; JPEG and noise eat into a small triangle's apex
# and push its fill up, hence the wide triangle range.
SQUARE_MIN_FILL = 0.92
CIRCLE_FILL = (0.65, 0.86)
TRIANGLE_FILL = (0.38, 0.75)
SYMMETRIC_TAPER = (0.75, 1.33)
TRIANGLE_MAX_TAPER = 0.5


@dataclass(frozen=True)
class DetectedObject:
    """One object-colour region. ``shape``/``size``/``position`` are None when unrecognised."""

    colour: str
    shape: str | None
    size: str | None
    position: str | None
    pixels: int  # pixel count at the analysis resolution (``ReadScene.resolution``)
    area: float  # units²
    centre: tuple[float, float]  # bounding-box centre, units, y down
    extent: tuple[float, float]  # bounding-box width and height, units
    fill: float  # sum of row spans / bounding-box pixels
    taper: float  # mean width of the top third of rows / that of the bottom third


@dataclass(frozen=True)
class ReadScene:
    background: str
    objects: tuple[DetectedObject, ...]
    # Solid regions in a background colour other than the background; none in a true render.
    foreign_regions: int
    resolution: int  # the side of the grid analysed (the input's, or WORK_RES)


# ---------------------------------------------------------------------------
# Pixels


def _as_rgb(image: Any) -> np.ndarray:
    """A PIL image or an HxWx3 (or HxWx4) uint8 array as RGB, sampled down if large."""
    if isinstance(image, Image.Image):
        if max(image.size) > MAX_NATIVE:
            # Pillow's NEAREST picks the pixel under each output pixel's centre, exactly as
            # _reduce does (the tests hold it to that), without copying the full image.
            image = image.resize((WORK_RES, WORK_RES), Image.Resampling.NEAREST)
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {arr.dtype}")
    return _reduce(arr[:, :, :3])


def _reduce(rgb: np.ndarray) -> np.ndarray:
    """Nearest-neighbour sample a large image down to WORK_RES, at the pixel centres."""
    h, w = rgb.shape[:2]
    if max(h, w) <= MAX_NATIVE:
        return rgb
    rows = ((np.arange(WORK_RES) + 0.5) * (h / WORK_RES)).astype(np.intp)
    cols = ((np.arange(WORK_RES) + 0.5) * (w / WORK_RES)).astype(np.intp)
    return rgb[rows[:, None], cols[None, :]]


def palette_indices(rgb: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour for every pixel, shape (H, W).

    Distance is measured in YCbCr with luma counted 4x (2x in amplitude). An exact palette
    colour is its own nearest either way; the weighting matters for lossy copies. JPEG keeps
    luma at full resolution but halves chroma (4:2:0), so at 64 px an object's edge pixels
    keep its brightness while taking on the neighbour's hue; plain RGB distance then gives
    away a small shape's corners to the background and turns squares into "circles". With
    luma weighted, 64 px JPEGs at quality 75 pass about 99% of the time instead of 93%.
    """
    # |W(p - c)|² = |Wp|² - 2 p·(WᵀW c) + |Wc|², and |Wp|² is the same for every c.
    px = rgb.reshape(-1, 3).astype(np.float64)
    score = _PALETTE_NORM - 2.0 * (px @ _PALETTE_GRAM)
    return np.asarray(score.argmin(axis=1).astype(np.uint8).reshape(rgb.shape[:2]))


def _label(idx: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """4-connected regions of equal ``idx`` within ``fg``, as flat indices; ``idx.size`` elsewhere.

    Min-label propagation with pointer jumping, all in numpy: every region ends up labelled
    with one of its own pixels' flat index, typically within ten passes.
    """
    h, w = idx.shape
    n = h * w
    lab = np.where(fg, np.arange(n).reshape(h, w), n)
    join_h = fg[:, :-1] & fg[:, 1:] & (idx[:, :-1] == idx[:, 1:])
    join_v = fg[:-1, :] & fg[1:, :] & (idx[:-1, :] == idx[1:, :])
    while True:
        new = lab.copy()
        m = np.where(join_h, np.minimum(lab[:, :-1], lab[:, 1:]), n)
        new[:, :-1] = np.minimum(new[:, :-1], m)
        new[:, 1:] = np.minimum(new[:, 1:], m)
        m = np.where(join_v, np.minimum(lab[:-1, :], lab[1:, :]), n)
        new[:-1, :] = np.minimum(new[:-1, :], m)
        new[1:, :] = np.minimum(new[1:, :], m)
        # A label is always a pixel of the same region, so following it stays in the region.
        new = np.append(new.ravel(), n)[new]
        if np.array_equal(new, lab):
            return lab
        lab = new


def _core(lab: np.ndarray) -> np.ndarray:
    """Pixels whose four neighbours (inside the image) carry the same label."""
    p = np.pad(lab, 1, constant_values=-1)
    c = p[1:-1, 1:-1]
    return np.asarray(
        (p[:-2, 1:-1] == c) & (p[2:, 1:-1] == c) & (p[1:-1, :-2] == c) & (p[1:-1, 2:] == c)
    )


# ---------------------------------------------------------------------------
# Reading one region


def _shape_of(fill: float, taper: float, aspect: float) -> str | None:
    if aspect > MAX_ASPECT:
        return None
    if fill >= SQUARE_MIN_FILL and SYMMETRIC_TAPER[0] <= taper <= SYMMETRIC_TAPER[1]:
        return "square"
    if (
        CIRCLE_FILL[0] <= fill <= CIRCLE_FILL[1]
        and SYMMETRIC_TAPER[0] <= taper <= SYMMETRIC_TAPER[1]
    ):
        return "circle"
    if TRIANGLE_FILL[0] <= fill <= TRIANGLE_FILL[1] and taper <= TRIANGLE_MAX_TAPER:
        return "triangle"
    return None


def _size_of(width: float, height: float) -> str | None:
    for name, units in SIZES.items():
        if abs(width - units) <= SIZE_TOLERANCE and abs(height - units) <= SIZE_TOLERANCE:
            return name
    return None


def _position_of(x: float, y: float) -> str | None:
    for name, (px, py) in POSITIONS.items():
        if abs(x - px) <= POSITION_TOLERANCE and abs(y - py) <= POSITION_TOLERANCE:
            return name
    return None


def _read_region(
    ys: np.ndarray, xs: np.ndarray, colour: str, upx: float, upy: float
) -> DetectedObject:
    """Measure one region; ``upx``/``upy`` are units per pixel along x and y."""
    y0, y1 = int(ys.min()), int(ys.max())
    x0, x1 = int(xs.min()), int(xs.max())
    # A stray pixel stuck to a straight edge would stretch the box by a pixel and skew the
    # fill ratio: drop an outermost row or column that is a single pixel beside a long one.
    # A true shape's outline grows by at most about 2 pixels a row or column, so it loses at
    # worst a one-pixel apex or corner column this way.
    rows_n = np.bincount(ys - y0)
    cols_n = np.bincount(xs - x0)
    if rows_n.size > 2 and cols_n.size > 2:
        y0 += int(rows_n[0] == 1 and rows_n[1] >= 4)
        y1 -= int(rows_n[-1] == 1 and rows_n[-2] >= 4)
        x0 += int(cols_n[0] == 1 and cols_n[1] >= 4)
        x1 -= int(cols_n[-1] == 1 and cols_n[-2] >= 4)
    inside = (ys >= y0) & (ys <= y1) & (xs >= x0) & (xs <= x1)
    ys, xs = ys[inside], xs[inside]
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    n = int(ys.size)
    # Row spans (leftmost to rightmost pixel) rather than pixel counts, so that stray holes
    # inside an object (noise, a mis-coloured pixel) do not lower its fill. All three shapes
    # are convex, so a true render's spans equal its counts.
    rows, first = np.unique(ys, return_index=True)
    last = np.append(first[1:], ys.size) - 1  # np.nonzero lists pixels row by row
    widths = np.zeros(bh)
    widths[rows - y0] = xs[last] - xs[first] + 1
    third = max(1, bh // 3)
    taper = float(widths[:third].mean() / max(widths[-third:].mean(), 1e-9))
    width, height = bw * upx, bh * upy
    fill = float(widths.sum() / (bw * bh))
    centre = ((x0 + x1 + 1) / 2 * upx, (y0 + y1 + 1) / 2 * upy)
    aspect = max(width, height) / max(min(width, height), 1e-9)
    return DetectedObject(
        colour=colour,
        shape=_shape_of(fill, taper, aspect),
        size=_size_of(width, height),
        position=_position_of(*centre),
        pixels=n,
        area=n * upx * upy,
        centre=centre,
        extent=(width, height),
        fill=fill,
        taper=taper,
    )


# ---------------------------------------------------------------------------
# The scene


def read_scene(image: Any) -> ReadScene:
    """The scene in ``image`` (a PIL image or an HxWx3 uint8 array), as far as pixels tell."""
    return read_indices(palette_indices(_as_rgb(image)))


def read_indices(idx: np.ndarray) -> ReadScene:
    """``read_scene`` of a picture already in palette indices (H, W): what the model itself
    draws, so checking its own result skips the colour mapping (a third of the time)."""
    h, w = idx.shape
    upx, upy = UNITS / w, UNITS / h

    bg_counts = np.bincount(idx.ravel(), minlength=len(PALETTE_NAMES))[:N_BACKGROUNDS]
    bg = int(bg_counts.argmax())

    lab = _label(idx, idx != bg)
    n = h * w
    counts = np.bincount(lab.ravel(), minlength=n + 1)[:n]
    core = np.bincount(lab[_core(lab) & (lab < n)], minlength=n)
    unit2 = upx * upy
    keep = np.flatnonzero((counts * unit2 >= MIN_AREA_UNITS2) & (core * unit2 >= MIN_CORE_UNITS2))

    objects: list[DetectedObject] = []
    foreign = 0
    flat_idx = idx.ravel()
    for root in keep:
        colour_i = int(flat_idx[root])
        if colour_i < N_BACKGROUNDS:
            foreign += 1
            continue
        ys, xs = np.nonzero(lab == root)
        objects.append(_read_region(ys, xs, PALETTE_NAMES[colour_i], upx, upy))
    objects.sort(key=lambda o: -o.pixels)
    return ReadScene(PALETTE_NAMES[bg], tuple(objects), foreign, w)
