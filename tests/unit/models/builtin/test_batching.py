"""Continuous batching of the built-in model: independent requests share forward passes,
joining and leaving at any step, and each still makes exactly the image it makes alone.

"Exactly" is checked twice: the images (tokens) under random schedules of joins,
leaves, pauses and swaps; and, since a token only flips when rounding lands on a
sampling boundary, the floats themselves: the key/value cache a request builds batched
is bit for bit the one it builds alone.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from daguerre.models.base import RenderRequest, RenderState, render
from daguerre.models.builtin.backend import BuiltinModel, BuiltinState

PROMPTS = [
    "a small blue square on the left",
    "a large red circle in the center, on a white background",
    "a yellow triangle at the top and a green circle at the bottom",
    "a purple square on the right",
]


@pytest.fixture(scope="module")
def model() -> BuiltinModel:
    m = BuiltinModel()
    m.setup("cpu")
    return m


def requests(model: BuiltinModel, rng: random.Random, count: int) -> list[list[RenderRequest]]:
    """Requests of 1 to 3 images, of 4, 8, 10 or 16 steps, every fourth an edit."""
    source = render(model, [RenderRequest(PROMPTS[1], seed=5)])[0].image
    out = []
    for i in range(count):
        steps, n = rng.choice([4, 8, 8, 10, 16]), rng.choice([1, 1, 2, 3])
        if i % 4 == 3:
            out.append(
                [RenderRequest("make the circle green", seed=90 + i, steps=steps, source=source)]
                * n
            )
        else:
            out.append(
                [RenderRequest(PROMPTS[i % 4], seed=100 + i + k, steps=steps) for k in range(n)]
            )
    return out


def images(model: BuiltinModel, state: RenderState) -> list[np.ndarray]:
    return [np.asarray(r.image) for r in model.finish(state)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_join_leave_pause_and_swap_at_any_step_give_the_image_made_alone(
    model: BuiltinModel, seed: int
) -> None:
    rng = random.Random(seed)
    reqs = requests(model, rng, 10)
    alone = [[np.asarray(r.image) for r in render(model, rq)] for rq in reqs]
    waiting = list(range(len(reqs)))
    held: dict[int, RenderState] = {}
    swapped: dict[int, bytes] = {}
    done: dict[int, list[np.ndarray]] = {}
    events = {"pause": 0, "swap": 0, "join": 0}
    while waiting or held or swapped:
        while waiting and (not held or rng.random() < 0.4):  # joins at arbitrary steps
            i = waiting.pop(0)
            held[i] = model.start(reqs[i])
            events["join"] += 1
        for i in [i for i in swapped if rng.random() < 0.5 or not held]:
            held[i] = model.load_state(swapped.pop(i), reqs[i])
        running = [i for i in held if rng.random() < 0.75] or list(held)[:1]
        for i in [i for i in held if i not in running]:  # paused this step
            events["pause"] += 1
            if rng.random() < 0.3:
                swapped[i] = model.save_state(held.pop(i))
                events["swap"] += 1
        model.step_many([held[i] for i in running])
        for i in running:
            if held[i].step >= held[i].total_steps:  # leaves at once
                done[i] = images(model, held.pop(i))
    assert min(events.values()) > 0, events
    for i, made in done.items():
        assert all((a == b).all() for a, b in zip(made, alone[i], strict=True)), f"request {i}"


def cache(state: BuiltinState) -> list[torch.Tensor]:
    assert state.generation.cache is not None, "evicted states own their cache"
    return [t for pair in state.generation.cache for t in pair]


def test_the_cache_is_the_same_bits_batched_or_alone(model: BuiltinModel) -> None:
    def start(seed: int) -> BuiltinState:
        return model.start([RenderRequest(PROMPTS[0], seed=seed)])

    batched, alone = start(1), start(1)
    others = [start(10 + i) for i in range(5)]
    model.step_many([batched, *others])
    model.step_many([batched, *others[:2]])  # two leave
    model.step_many([others[4], batched])  # one comes back, in another order
    for _ in range(3):
        model.step_many([alone])
    model.step_many(others)  # both leave the arena and take their caches along
    assert torch.equal(batched.generation.tokens, alone.generation.tokens)
    assert all(torch.equal(a, b) for a, b in zip(cache(batched), cache(alone), strict=True))


def test_steps_of_different_sizes_share_passes_and_stop_at_their_own_boundaries(
    model: BuiltinModel,
) -> None:
    short = model.start([RenderRequest(PROMPTS[0], seed=1, steps=4)])  # 16 tokens a step
    long = model.start([RenderRequest(PROMPTS[1], seed=2, steps=8)])  # 8 tokens a step
    model.step_many([short, long])
    # Both advanced the 8 tokens of the nearer boundary: long finished a step, short not.
    assert (short.step, long.step) == (0, 1)
    model.step_many([short, long])
    assert (short.step, long.step) == (1, 2)
    assert short.generation.position == long.generation.position == 16


def test_state_bytes_counts_the_cache_of_every_image(model: BuiltinModel) -> None:
    one = model.start([RenderRequest(PROMPTS[0])])
    three = model.start([RenderRequest(PROMPTS[0])] * 3)
    assert model.state_bytes(three) == 3 * model.state_bytes(one) > 100_000
