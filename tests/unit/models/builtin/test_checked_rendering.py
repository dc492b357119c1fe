"""The shipped model checks its images and redraws the misses: a request still renders the
same bits alone or stepped with others, and resumed from a checkpoint taken during its
redraws; an edit that names nothing returns the user's picture; a foreign source is
edited right; and a row samples alike whatever temperatures its neighbours have."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from daguerre.models.base import RenderRequest, render
from daguerre.models.builtin import checker, grammar
from daguerre.models.builtin.backend import BuiltinModel, BuiltinState
from daguerre.models.builtin.generation import Conditioning
from daguerre.models.builtin.scene import Scene, SceneObject, sample_scene
from daguerre.models.builtin.training.foreign import antialiased
from daguerre.models.builtin.understanding import describe, read_prompt, read_source
from daguerre.models.builtin.verify import check_indices


@pytest.fixture(scope="module")
def model() -> BuiltinModel:
    m = BuiltinModel()
    m.setup("cpu")
    return m


@pytest.fixture(scope="module")
def plain() -> BuiltinModel:
    """The same weights with checking off: every image is the model's first attempt."""
    m = BuiltinModel(retries=0)
    m.setup("cpu")
    return m


def bits(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def misses_and_hits(plain: BuiltinModel) -> tuple[list[RenderRequest], list[RenderRequest]]:
    """Three-object captions (the hard ones) whose first attempt misses, and some it gets
    right, found by checking the unchecked model's images."""
    rng = random.Random(0)
    reqs = [
        RenderRequest(grammar.sample_caption(sample_scene(rng, 3), rng)[0], seed=i)
        for i in range(64)
    ]
    results = render(plain, reqs)
    misses: list[RenderRequest] = []
    hits: list[RenderRequest] = []
    for req, result in zip(reqs, results, strict=True):
        verdict = check_indices(np.asarray(result.image), read_prompt(req.prompt))
        assert verdict is not None
        (hits if verdict.ok else misses).append(req)
    assert len(misses) >= 2, f"only {len(misses)} of 64 first attempts missed"
    return misses, hits


def redraws_of(model: BuiltinModel, req: RenderRequest) -> int:
    before = model.verified.retries
    render(model, [req])
    return model.verified.retries - before


def stepped_together(
    model: BuiltinModel, requests: list[RenderRequest], late: int
) -> list[np.ndarray]:
    """One state a request, stepped with ``step_many`` as the engine does; the last
    ``late`` requests join after two shared steps."""
    waiting = requests[len(requests) - late :]
    states = [model.start([r]) for r in requests[: len(requests) - late]]
    rounds = 0
    while any(s.step < s.total_steps for s in states) or waiting:
        if rounds == 2:
            states += [model.start([r]) for r in waiting]
            waiting = []
        running = [s for s in states if s.step < s.total_steps]
        if running:
            model.step_many(running)
        rounds += 1
    return [bits(model.finish(s)[0].image) for s in states]


def test_a_first_miss_is_redrawn_and_changes_the_image(
    model: BuiltinModel, plain: BuiltinModel, misses_and_hits: tuple[list, list]
) -> None:
    misses, hits = misses_and_hits
    miss = misses[0]
    before = model.verified.missed_first
    checked = render(model, [miss])[0]
    assert model.verified.missed_first == before + 1
    assert not (bits(checked.image) == bits(render(plain, [miss])[0].image)).all()
    assert redraws_of(model, hits[0]) == 0


def test_a_request_renders_the_same_bits_alone_or_stepped_with_others(
    model: BuiltinModel, misses_and_hits: tuple[list, list]
) -> None:
    misses, hits = misses_and_hits
    source = render(model, [RenderRequest("a large red circle in the center", seed=5)])[0].image
    requests = [
        misses[0],
        RenderRequest(hits[0].prompt, hits[0].seed, steps=4),
        RenderRequest(misses[1].prompt, misses[1].seed, steps=16),
        RenderRequest("make the circle green", seed=3, source=source),
        hits[1],
        RenderRequest(misses[0].prompt, misses[0].seed, steps=4),
    ]
    alone = [bits(render(model, [r])[0].image) for r in requests]
    before = model.verified.retries
    together = stepped_together(model, requests, late=2)
    assert model.verified.retries > before  # redraws rode in the shared passes
    for i, (a, b) in enumerate(zip(alone, together, strict=True)):
        assert (a == b).all(), f"request {i} differs stepped together"


def step_into_redraws(model: BuiltinModel, requests: list[RenderRequest]) -> BuiltinState:
    """A render stepped until its redraws are under way, a band into them."""
    state = model.start(requests)
    while state.redraw is None:
        assert state.step < state.total_steps, "settled without a redraw"
        state = model.step(state)
    state = model.step(state)
    assert state.redraw is not None and state.redraw.position > 0
    assert state.step == state.total_steps - 1
    return state


@pytest.mark.parametrize("how", ["stepped", "stepped_with_another", "finished_at_once"])
def test_a_render_checkpointed_during_its_redraws_resumes_to_the_same_image(
    model: BuiltinModel, misses_and_hits: tuple[list, list], how: str
) -> None:
    misses, hits = misses_and_hits
    requests = [hits[0], misses[0], misses[1]]
    straight = [bits(r.image) for r in render(model, requests)]
    saved = model.save_state(step_into_redraws(model, requests))

    fresh = BuiltinModel()
    fresh.setup("cpu")
    state = fresh.load_state(saved, requests)
    assert state.step == state.total_steps - 1 and state.generation.position == 64
    # Stepped on, it is checked and redrawn in the engine's loop (beside another render
    # mid-way, as a worker resumes it); finished at once, apart, in finish().
    other = fresh.start([hits[1]])
    states = {"stepped": [state], "stepped_with_another": [state, other]}.get(how, [])
    while any(s.step < s.total_steps for s in states):
        fresh.step_many([s for s in states if s.step < s.total_steps])
    resumed = [bits(r.image) for r in fresh.finish(state)]
    assert fresh.verified.missed_first >= 2
    for i, (a, b) in enumerate(zip(straight, resumed, strict=True)):
        assert (a == b).all(), f"image {i} differs after resuming"
    if how == "stepped_with_another":
        assert (bits(fresh.finish(other)[0].image) == bits(render(model, [hits[1]])[0].image)).all()


RED_CIRCLE = Scene("white", (SceneObject("red", "circle", "large", "center"),))


@pytest.mark.parametrize("size", [64, 256])
def test_an_instruction_that_names_nothing_returns_the_users_picture(
    model: BuiltinModel, size: int
) -> None:
    source = antialiased(RED_CIRCLE, random.Random(0)).resize((size, size))
    req = RenderRequest("remove the green circle", seed=1, width=size, height=size, source=source)
    result = render(model, [req])[0]
    assert result.revised_prompt is not None
    assert result.revised_prompt.startswith("nothing changed")
    assert "there is no green circle" in result.revised_prompt
    assert result.image.size == source.size
    assert (bits(result.image) == bits(source)).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_edit_of_a_foreign_source_comes_out_right(model: BuiltinModel, seed: int) -> None:
    source = antialiased(RED_CIRCLE, random.Random(0))
    req = RenderRequest("make the circle green", seed=seed, source=source)
    result = render(model, [req])[0]
    assert result.revised_prompt == "recolour: the red circle → green"
    asked = Scene("white", (SceneObject("green", "circle", "large", "center"),))
    verdict = checker.check_scene(result.image, asked)
    assert verdict.ok, verdict.reasons


def test_a_row_samples_alike_whatever_temperatures_its_neighbours_have(
    model: BuiltinModel,
) -> None:
    sampler = model.sampler
    gen = torch.Generator().manual_seed(0)
    logits, uniforms = torch.randn(4, 300, generator=gen) * 3, torch.rand(4, generator=gen)
    rows = []
    for others in ([0.6, 0.6, 0.6], [0.3, 1.6, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 5.0]):
        rows.append(sampler.sample(logits, uniforms, torch.tensor([0.6, *others])))
    assert all(int(r[0]) == int(rows[0][0]) for r in rows)
    # Temperature 0 is the most likely token; a shared scalar divides the same way.
    zero = sampler.sample(logits, uniforms, torch.zeros(4))
    assert (zero == logits.argmax(-1)).all()
    probs = torch.softmax(logits.float() / 0.6, -1)
    cdf = probs.cumsum(-1)
    scalar = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    assert int(scalar[0]) == int(rows[0][0])


def test_an_image_samples_alike_whatever_temperatures_share_its_pass(
    model: BuiltinModel,
) -> None:
    prompt = "a small blue square on the left and a red circle at the top, on a gray background"
    own = Conditioning(prompt, 7, temperature=1.3)
    seen = []
    for temps in ([None, None, None], [0.6, 1.6, 0.0], [1.3, 1.3, 1.3]):
        others = [Conditioning(prompt, 8 + i, temperature=t) for i, t in enumerate(temps)]
        seen.append(model.sampler.generate([own, *others])[0])
    assert all((s == seen[0]).all() for s in seen)
    assert (model.sampler.generate([own])[0] == seen[0]).all()


def test_an_instruction_that_names_nothing_keeps_a_stored_encoding_as_it_was(
    model: BuiltinModel,
) -> None:
    first = render(model, [RenderRequest("a large red circle in the center", seed=5)])[0]
    req = RenderRequest(
        "remove the green circle", seed=2, source_encoding=first.encoding, width=64, height=64
    )
    again = render(model, [req])[0]
    assert again.revised_prompt == "nothing changed: there is no green circle in the picture"
    assert again.encoding == first.encoding
    assert (bits(again.image) == bits(first.image)).all()


def test_free_text_says_what_the_picture_came_out_as(model: BuiltinModel) -> None:
    result = render(model, [RenderRequest("a cat wearing a hat", seed=4)])[0]
    drawn = read_source(np.asarray(result.image.convert("RGB")))
    assert result.revised_prompt == (describe(drawn) if drawn else "a cat wearing a hat")


def test_quality_sets_how_much_checking_a_request_gets(
    model: BuiltinModel, misses_and_hits: tuple[list, list]
) -> None:
    """Low checks nothing (the model's first attempt, as fast as it comes); high lets a
    miss have twice the default redraws."""
    miss = misses_and_hits[0][0]
    before = model.verified.checked
    render(model, [replace(miss, quality="low")])
    assert model.verified.checked == before
    assert model.start([replace(miss, quality="high")]).redraws.retries == 2 * model.retries
    assert model.start([replace(miss, quality="medium")]).redraws.retries == model.retries
