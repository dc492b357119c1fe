import random

from daguerre.models.builtin import grammar
from daguerre.models.builtin.scene import COLOURS, POSITIONS, SHAPES, sample_scene
from daguerre.models.builtin.tokens import Tokenizer, enumerate_patterns
from daguerre.models.builtin.training import data


def test_held_out_combinations_never_reach_training() -> None:
    rng = random.Random(0)
    for _ in range(300):
        assert data.scene_in_training(sample_scene(rng, allowed=data.in_training))
        kind = rng.choice(grammar.EDIT_KINDS)
        source, _, result = data.sample_edit_example(rng, kind)
        assert data.scene_in_training(source) and data.scene_in_training(result)


def test_every_colour_shape_and_shape_position_pair_is_still_trained() -> None:
    trained = {
        (c, s, p) for c in COLOURS for s in SHAPES for p in POSITIONS if data.in_training(c, s, p)
    }
    assert len(data.HELD_OUT) == 12
    assert {(c, s) for c, s, _ in trained} == {(c, s) for c in COLOURS for s in SHAPES}
    assert {(s, p) for _, s, p in trained} == {(s, p) for s in SHAPES for p in POSITIONS}


def test_batches_have_the_model_shapes() -> None:
    tok = Tokenizer(enumerate_patterns())
    rng = random.Random(1)
    captions = data.t2i_batch(rng, tok, 4)
    edits = data.edit_batch(rng, tok, 4)
    assert captions.source is None and captions.target.shape == (4, 64, 2)
    assert edits.source is not None and edits.source.shape == (4, 64, 2)
    assert edits.words.shape == captions.words.shape
