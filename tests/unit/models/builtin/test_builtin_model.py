"""The shipped built-in model: loading, determinism, resume, masks, and a smoke evaluation."""

import random

import numpy as np
import pytest
from PIL import Image

from daguerre.models.base import ImageModel, RenderRequest, render
from daguerre.models.builtin import checker, grammar, weights
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.builtin.scene import render as render_scene
from daguerre.models.builtin.scene import sample_scene
from daguerre.models.builtin.training.data import sample_edit_example
from daguerre.models.registry import create_model


@pytest.fixture(scope="module")
def model() -> BuiltinModel:
    m = create_model("builtin")
    assert isinstance(m, BuiltinModel)
    m.setup("cpu")
    return m


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_shipped_weights_load_through_the_real_path(model: BuiltinModel) -> None:
    assert weights.SHIPPED.exists()
    assert weights.SHIPPED.stat().st_size <= 10 * 1024 * 1024
    assert isinstance(model, ImageModel)
    assert model.can_edit and model.native_size == 64
    assert model.info["steps"] == model.info["of_steps"]  # a finished run, not a snapshot


def test_same_seed_same_image(model: BuiltinModel) -> None:
    req = [RenderRequest("a large red circle in the center, on a white background", seed=7)]
    a = render(model, req)[0].image
    b = render(model, req)[0].image
    assert (pixels(a) == pixels(b)).all()


def test_image_does_not_depend_on_its_batch(model: BuiltinModel) -> None:
    prompt = "a blue square on the left and a yellow triangle on the right, on a black background"
    alone = render(model, [RenderRequest(prompt, seed=3)])[0].image
    batched = render(
        model,
        [
            RenderRequest("a green circle at the top, on a gray background", seed=1),
            RenderRequest(prompt, seed=3),
        ],
    )[1].image
    assert (pixels(alone) == pixels(batched)).all()


@pytest.mark.parametrize("k", [1, 3, 7])
def test_resume_at_step_k_gives_the_identical_image(model: BuiltinModel, k: int) -> None:
    rng = random.Random(k)
    src, edit, _ = sample_edit_example(rng, "move", training=False)
    requests = [
        RenderRequest(
            grammar.sample_caption(sample_scene(rng), rng)[0], seed=11, width=128, height=128
        ),
        RenderRequest(edit.text(), seed=12, source=Image.fromarray(render_scene(src))),
    ]
    straight = render(model, requests)

    state = model.start(requests)
    for _ in range(k):
        state = model.step(state)
    saved = model.save_state(state)

    fresh = BuiltinModel()
    fresh.setup("cpu")
    resumed_state = fresh.load_state(saved, requests)
    assert resumed_state.step == k
    while resumed_state.step < resumed_state.total_steps:
        resumed_state = fresh.step(resumed_state)
    resumed = fresh.finish(resumed_state)
    for a, b in zip(straight, resumed, strict=True):
        assert (pixels(a.image) == pixels(b.image)).all()
        assert a.encoding == b.encoding


def test_previews_grow_top_to_bottom(model: BuiltinModel) -> None:
    state = model.start(
        [RenderRequest("a large orange square in the center, on a black background", seed=0)]
    )
    assert model.preview(state, 0) is None
    state = model.step(state)
    first = model.preview(state, 0)
    assert first is not None and first.size == (64, 64)
    while state.step < state.total_steps:
        state = model.step(state)
    final = render(
        model, [RenderRequest("a large orange square in the center, on a black background", seed=0)]
    )[0]
    assert (pixels(model.preview(state, 0)) == pixels(final.image)).all()  # type: ignore[arg-type]


def test_masked_edits_never_change_pixels_outside_the_mask(model: BuiltinModel) -> None:
    rng = random.Random(5)
    requests = []
    for i in range(8):
        src, edit, _ = sample_edit_example(rng, "recolour", training=False)
        source = Image.fromarray(render_scene(src, 256))
        alpha = np.full((256, 256), 255, np.uint8)
        y0, x0 = rng.randrange(0, 160), rng.randrange(0, 160)
        alpha[y0 : y0 + 90, x0 : x0 + 90] = 0  # an arbitrary, patch-misaligned hole
        mask = Image.fromarray(np.dstack([np.zeros((256, 256, 3), np.uint8), alpha]), "RGBA")
        requests.append(
            RenderRequest(edit.text(), seed=i, source=source, mask=mask, width=256, height=256)
        )
    for req, result in zip(requests, render(model, requests), strict=True):
        keep = np.asarray(req.mask)[..., 3] != 0  # type: ignore[arg-type]
        assert (pixels(result.image)[keep] == pixels(req.source)[keep]).all()  # type: ignore[arg-type]


def test_an_edit_can_reuse_the_encoding_of_an_image_the_model_made(model: BuiltinModel) -> None:
    made = render(
        model, [RenderRequest("a large green triangle on the left, on a white background", seed=2)]
    )[0]
    assert made.encoding is not None
    by_pixels = render(
        model, [RenderRequest("make the background black", seed=4, source=made.image)]
    )[0]
    by_tokens = render(
        model, [RenderRequest("make the background black", seed=4, source_encoding=made.encoding)]
    )[0]
    assert (pixels(by_pixels.image) == pixels(by_tokens.image)).all()


@pytest.mark.parametrize("prompt", ["", "a photo of a cat", "x" * 5000, "red " * 200])
def test_prompts_outside_the_grammar_still_render(model: BuiltinModel, prompt: str) -> None:
    image = render(model, [RenderRequest(prompt, seed=0, width=96, height=96)])[0].image
    assert image.size == (96, 96)


def test_smoke_evaluation_meets_a_floor(model: BuiltinModel) -> None:
    """16 captions and 16 edits from the evaluation seed; the real numbers are in docs/model.md."""
    rng = random.Random(20_261_127)
    captions = [grammar.sample_caption(sample_scene(rng, 1 + i % 3), rng) for i in range(16)]
    results = render(model, [RenderRequest(t, seed=i) for i, (t, _) in enumerate(captions)])
    caption_ok = sum(
        checker.check(r.image, spec).ok for (_, spec), r in zip(captions, results, strict=True)
    )
    edits = [sample_edit_example(rng, grammar.EDIT_KINDS[i % 6], training=False) for i in range(16)]
    requests = [
        RenderRequest(e.text(), seed=i, source=Image.fromarray(render_scene(s)))
        for i, (s, e, _) in enumerate(edits)
    ]
    edit_results = render(model, requests)
    edit_ok = sum(
        checker.check(r.image, grammar.expected_spec(after, edit)).ok
        for (_, edit, after), r in zip(edits, edit_results, strict=True)
    )
    assert caption_ok >= 12, f"{caption_ok}/16 captions fully right"
    assert edit_ok >= 10, f"{edit_ok}/16 edits fully right"
