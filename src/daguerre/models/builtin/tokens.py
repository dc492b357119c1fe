"""Palette-factored patch tokens: how the built-in model sees an image.

A 64×64 image is an 8×8 grid of 8×8-pixel patches, read top to bottom. Each patch
becomes one discrete token made of

- a *pattern*: which of up to three colour slots each of its 64 pixels takes
  (slot 0 is the patch's most common colour, slot 1 the next, slot 2 the next);
- the palette colour in each slot (``NO_COLOUR`` for an unused slot).

Decoding is exact: a token names every pixel of its patch. The pattern vocabulary is
enumerated from the world itself (every shape at every placement, alone and in
pairs), so it is fixed before training and stored next to the weights.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import replace

import numpy as np

from daguerre.models.builtin.scene import (
    BACKGROUNDS,
    JITTER_UNITS,
    PALETTE,
    PALETTE_NAMES,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    render_indices,
)

NATIVE = 64
PATCH = 8
GRID = NATIVE // PATCH  # 8 patches a side
N_TOKENS = GRID * GRID  # 64 tokens an image
N_COLOURS = len(PALETTE_NAMES)  # 9
NO_COLOUR = N_COLOURS  # marks an unused slot
N_SLOTS = 3
# Colour triples (c1, c2, c3) flattened; c2 and c3 may be NO_COLOUR.
N_COLOUR_CLASSES = N_COLOURS * (N_COLOURS + 1) * (N_COLOURS + 1)


def colour_class(c1: np.ndarray, c2: np.ndarray, c3: np.ndarray) -> np.ndarray:
    return (c1 * (N_COLOURS + 1) + c2) * (N_COLOURS + 1) + c3


def colour_triple(cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c3 = cls % (N_COLOURS + 1)
    c2 = (cls // (N_COLOURS + 1)) % (N_COLOURS + 1)
    c1 = cls // ((N_COLOURS + 1) ** 2)
    return c1, c2, c3


def to_patches(indices: np.ndarray) -> np.ndarray:
    """(B, 64, 64) palette indices -> (B, 64, 64): per image, 64 patches of 64 pixels."""
    b = indices.shape[0]
    x = indices.reshape(b, GRID, PATCH, GRID, PATCH).transpose(0, 1, 3, 2, 4)
    return x.reshape(b, N_TOKENS, PATCH * PATCH)


def patches_touched(area: np.ndarray) -> np.ndarray:
    """(64, 64) bool pixels -> (64,) bool: the patches (token positions) holding any of them."""
    return np.asarray(area.reshape(GRID, PATCH, GRID, PATCH).any(axis=(1, 3)).reshape(-1))


def from_patches(patches: np.ndarray) -> np.ndarray:
    b = patches.shape[0]
    x = patches.reshape(b, GRID, GRID, PATCH, PATCH).transpose(0, 1, 3, 2, 4)
    return x.reshape(b, NATIVE, NATIVE)


def _slots(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slot map (N, 64) and slot colours (N, 3) for N patches of palette indices."""
    n = patches.shape[0]
    counts = np.zeros((n, N_COLOURS), np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), patches.shape[1]), patches.ravel()), 1)
    # Most pixels first; ties go to the lower palette index so encoding is deterministic.
    order = np.argsort(-counts * 16 + np.arange(N_COLOURS), axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(N_COLOURS)
    slot_map = rank[np.arange(n)[:, None], patches]
    # A rare fourth colour (three large squares meeting in one patch) folds into slot 0.
    slot_map[slot_map >= N_SLOTS] = 0
    present = np.take_along_axis(counts, order[:, :N_SLOTS], axis=1) > 0
    colours = np.where(present, order[:, :N_SLOTS], NO_COLOUR)
    return slot_map.astype(np.uint8), colours


@functools.cache
def enumerate_patterns() -> np.ndarray:
    """Every slot pattern the world produces: each placement alone and each pair, sorted."""
    placements = []
    for shape, size, position in itertools.product(SHAPES, SIZES, POSITIONS):
        offsets = itertools.product(JITTER_UNITS, JITTER_UNITS) if size == "small" else [(0, 0)]
        placements += [SceneObject("red", shape, size, position, off) for off in offsets]
    scenes = [Scene("white", (p,)) for p in placements]
    for a, b in itertools.permutations(placements, 2):
        if a.position != b.position:
            # Both draw orders, and the lower palette index on either side, because equal
            # pixel counts are broken by palette index.
            scenes.append(Scene("white", (a, replace(b, colour="blue"))))
            scenes.append(Scene("white", (replace(a, colour="blue"), b)))
    found: set[bytes] = set()
    for start in range(0, len(scenes), 512):
        batch = np.stack([render_indices(s, NATIVE) for s in scenes[start : start + 512]])
        slot_map, _ = _slots(to_patches(batch).reshape(-1, PATCH * PATCH))
        found.update(row.tobytes() for row in slot_map)
    return np.stack([np.frombuffer(k, np.uint8) for k in sorted(found)])


class Tokenizer:
    """Encodes palette-index images to tokens and back, given a fixed pattern vocabulary."""

    def __init__(self, patterns: np.ndarray) -> None:
        self.patterns = patterns.astype(np.uint8)  # (P, 64)
        self.index = {row.tobytes(): i for i, row in enumerate(self.patterns)}
        # How many slots each pattern uses: limits the colour classes it may take.
        self.n_slots = self.patterns.max(axis=1).astype(np.int64) + 1
        self._pattern_one_hot = self._one_hot(self.patterns)

    @staticmethod
    def _one_hot(slot_maps: np.ndarray) -> np.ndarray:
        """(N, 64) slot maps -> (N, 192) float32 one-hot, for distances by matrix product."""
        return np.eye(N_SLOTS, dtype=np.float32)[slot_maps].reshape(len(slot_maps), -1)

    @property
    def n_patterns(self) -> int:
        return len(self.patterns)

    def encode(self, indices: np.ndarray) -> np.ndarray:
        """(B, 64, 64) palette indices -> (B, 64, 2) int64 tokens: (pattern id, colour class)."""
        b = indices.shape[0]
        slot_map, colours = _slots(to_patches(indices).reshape(-1, PATCH * PATCH))
        ids = np.array([self.index.get(row.tobytes(), -1) for row in slot_map], np.int64)
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            # Unseen layouts (uploads, triple junctions) take the nearest known pattern.
            # Hamming distance as 64 minus agreements; agreements are a one-hot dot product.
            agree = self._one_hot(slot_map[missing]) @ self._pattern_one_hot.T
            ids[missing] = agree.argmax(1)
            # Keep the colours consistent with the slots that pattern actually uses.
            used = self.n_slots[ids[missing]]
            colours[missing] = np.where(
                np.arange(N_SLOTS)[None] < used[:, None], colours[missing], NO_COLOUR
            )
            colours[missing, 0] = np.where(colours[missing, 0] == NO_COLOUR, 0, colours[missing, 0])
            for j in (1, 2):
                gap = (np.arange(N_SLOTS)[j] < used) & (colours[missing, j] == NO_COLOUR)
                colours[missing[gap], j] = colours[missing[gap], 0]
        cls = colour_class(colours[:, 0], colours[:, 1], colours[:, 2])
        return np.stack([ids, cls], axis=-1).reshape(b, N_TOKENS, 2)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """(B, 64, 2) tokens -> (B, 64, 64) palette indices."""
        b = tokens.shape[0]
        slot_map = self.patterns[tokens[..., 0].reshape(-1)]  # (N, 64)
        c1, c2, c3 = colour_triple(tokens[..., 1].reshape(-1))
        table = np.stack([c1, c2, c3], axis=1)  # (N, 3)
        table = np.where(table == NO_COLOUR, c1[:, None], table)
        pixels = np.take_along_axis(table, slot_map.astype(np.int64), axis=1)
        return from_patches(pixels.reshape(b, N_TOKENS, PATCH * PATCH))

    def valid_colour_classes(self) -> np.ndarray:
        """(4, N_COLOUR_CLASSES) bool: which colour classes fit a pattern of 1, 2 or 3 slots.

        Row k is for k slots (row 0 unused). Colours in a patch are distinct, and an
        unused slot must be NO_COLOUR.
        """
        c1, c2, c3 = colour_triple(np.arange(N_COLOUR_CLASSES))
        ok = np.zeros((4, N_COLOUR_CLASSES), bool)
        ok[1] = (c2 == NO_COLOUR) & (c3 == NO_COLOUR)
        ok[2] = (c2 != NO_COLOUR) & (c2 != c1) & (c3 == NO_COLOUR)
        ok[3] = (c2 != NO_COLOUR) & (c3 != NO_COLOUR) & (c2 != c1) & (c3 != c1) & (c3 != c2)
        return ok


def quantise(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 at any size -> (64, 64) nearest palette indices, sampled at pixel centres."""
    h, w = rgb.shape[:2]
    ys = ((np.arange(NATIVE) + 0.5) * h / NATIVE).astype(int)
    xs = ((np.arange(NATIVE) + 0.5) * w / NATIVE).astype(int)
    small = rgb[ys][:, xs].astype(np.int32)
    dist = ((small[:, :, None, :] - PALETTE[None, None].astype(np.int32)) ** 2).sum(-1)
    return dist.argmin(-1).astype(np.uint8)


BACKGROUND_INDICES = tuple(PALETTE_NAMES.index(b) for b in BACKGROUNDS)
