"""Training and evaluation examples, generated from the world on the fly.

Held-out colour-shape-position combinations never appear in any training scene
(caption or edit, source or result), so evaluation can measure composition.
Training and evaluation draw from different seeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from daguerre.models.builtin import grammar
from daguerre.models.builtin.scene import (
    COLOURS,
    POSITIONS,
    SHAPES,
    Scene,
    render_indices,
    sample_scene,
)
from daguerre.models.builtin.text import encode_text
from daguerre.models.builtin.tokens import Tokenizer


def _held_out() -> frozenset[tuple[str, str, str]]:
    """Two (colour, shape, position) triples per colour: 12 of 90.

    Each colour-shape and shape-position pair is still seen in other triples.
    """
    positions = list(POSITIONS)
    out = set()
    for i, colour in enumerate(COLOURS):
        for j in range(2):
            out.add((colour, SHAPES[(i + j) % 3], positions[(2 * i + 3 * j) % 5]))
    return frozenset(out)


HELD_OUT = _held_out()


def in_training(colour: str, shape: str, position: str) -> bool:
    return (colour, shape, position) not in HELD_OUT


def scene_in_training(scene: Scene) -> bool:
    return all(in_training(o.colour, o.shape, o.position) for o in scene.objects)


@dataclass
class Batch:
    words: np.ndarray  # (B, MAX_PHRASES, MAX_WORDS)
    source: np.ndarray | None  # (B, 64, 2) tokens, for edits
    target: np.ndarray  # (B, 64, 2) tokens
    kinds: list[str]


# Move and remove are the hard edits (the object must vanish in one place and, for a
# move, reappear at the same size elsewhere); background is the easy one.
EDIT_WEIGHTS = {
    "recolour": 1.0,
    "shape": 1.0,
    "move": 1.4,
    "remove": 1.3,
    "add": 1.0,
    "background": 0.5,
}
_MIN_OBJECTS = {"remove": 2}
_MAX_OBJECTS = {"add": 2}


def sample_edit_example(
    rng: random.Random, kind: str, *, training: bool = True
) -> tuple[Scene, grammar.Edit, Scene]:
    """A source scene, an instruction of ``kind`` and the edited scene."""
    allowed = in_training if training else None
    while True:
        lo, hi = _MIN_OBJECTS.get(kind, 1), _MAX_OBJECTS.get(kind, 3)
        n = rng.randint(lo, hi)
        source = sample_scene(rng, n, allowed=allowed)
        edit = grammar.sample_edit(source, rng, kind)
        result = grammar.apply_edit(source, edit, rng)
        if not training or scene_in_training(result):
            return source, edit, result


def t2i_batch(rng: random.Random, tok: Tokenizer, size: int) -> Batch:
    words, images = [], []
    for _ in range(size):
        scene = sample_scene(rng, allowed=in_training)
        text, _ = grammar.sample_caption(scene, rng)
        words.append(encode_text(text))
        images.append(render_indices(scene))
    return Batch(np.stack(words), None, tok.encode(np.stack(images)), ["caption"] * size)


def edit_batch(
    rng: random.Random, tok: Tokenizer, size: int, weights: dict[str, float] | None = None
) -> Batch:
    weights = weights or EDIT_WEIGHTS
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=size)
    words, sources, targets = [], [], []
    for kind in kinds:
        source, edit, result = sample_edit_example(rng, kind)
        words.append(encode_text(edit.text()))
        sources.append(render_indices(source))
        targets.append(render_indices(result))
    return Batch(
        np.stack(words), tok.encode(np.stack(sources)), tok.encode(np.stack(targets)), kinds
    )
