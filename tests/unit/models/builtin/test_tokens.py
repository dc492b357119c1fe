import random

import numpy as np

from daguerre.models.builtin.scene import render_indices, sample_scene
from daguerre.models.builtin.tokens import Tokenizer, enumerate_patterns


def test_tokens_decode_exactly_for_nearly_every_scene() -> None:
    tok = Tokenizer(enumerate_patterns())
    rng = random.Random(3)
    scenes = np.stack([render_indices(sample_scene(rng)) for _ in range(1000)])
    decoded = tok.decode(tok.encode(scenes))
    exact = (decoded == scenes).all(axis=(1, 2))
    # Only three large squares meeting in one patch lose a few pixels (a fourth colour).
    assert exact.mean() >= 0.98
    assert (decoded != scenes).sum(axis=(1, 2)).max() <= 8


def test_unknown_patterns_map_to_the_nearest_known_one() -> None:
    tok = Tokenizer(enumerate_patterns())
    noise = np.random.default_rng(0).integers(0, 9, size=(2, 64, 64)).astype(np.uint8)
    tokens = tok.encode(noise)
    assert tokens.shape == (2, 64, 2)
    assert (tokens[..., 0] < tok.n_patterns).all()
    tok.decode(tokens)  # decodes without error
