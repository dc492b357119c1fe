"""Check-and-redraw (verify.py) with a fake model: tokens name a scene, and "drawing"
one renders that scene, so each test says exactly which attempt comes out right. The
readings here have no plans (plans.py), so every retry is a plain redraw."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pytest

from daguerre.models.builtin import grammar
from daguerre.models.builtin.generation import Conditioning
from daguerre.models.builtin.plans import Stage
from daguerre.models.builtin.sampler import DEFAULT_TEMPERATURE
from daguerre.models.builtin.scene import Scene, SceneObject, render_indices
from daguerre.models.builtin.understanding import Reading
from daguerre.models.builtin.verify import (
    PLAIN_ATTEMPTS,
    Outcome,
    Redraws,
    retries_for,
    retry_seed,
    retry_temperature,
    verify,
)

ASKED = Scene("white", (SceneObject("red", "circle", "large", "center"),))
SCENES = {
    "right": ASKED,
    # Colour, size and position right, the shape wrong: a near miss.
    "close": Scene("white", (SceneObject("red", "square", "large", "center"),)),
    # Nothing right but the background: a far miss.
    "far": Scene("white", (SceneObject("blue", "triangle", "small", "top"),)),
}
CODES = list(SCENES)
READING = Reading("asked", grammar.spec_of(ASKED))
FREE_TEXT = Reading(None)  # nothing to check against


def tokens(*names: str) -> np.ndarray:
    """(B, 64, 2) tokens whose every entry is the code of the named scene."""
    return np.stack([np.full((64, 2), CODES.index(n)) for n in names])


def names(toks: np.ndarray) -> list[str]:
    return [CODES[int(t[0, 0])] for t in toks]


def decode(toks: np.ndarray) -> np.ndarray:
    return np.stack([render_indices(SCENES[n]) for n in names(toks)])


def no_decode(toks: np.ndarray) -> np.ndarray:
    raise AssertionError("decoded with checking off")


class FakeRedraw:
    """Draws the scenes of ``script`` in turn, whatever it is asked, and records the asks."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.calls: list[list[Conditioning]] = []

    def __call__(self, items: list[Conditioning]) -> np.ndarray:
        self.calls.append(items)
        return tokens(*(self.script.pop(0) for _ in items))


def items(*seeds: int) -> list[Conditioning]:
    return [Conditioning("asked", s) for s in seeds]


def run(
    first: Sequence[str],
    redraw: Callable[[list[Conditioning]], np.ndarray],
    retries: int = 4,
    readings: Sequence[Reading] | None = None,
    seeds: Sequence[int] | None = None,
) -> tuple[list[str], Outcome]:
    seeds = seeds or list(range(10, 10 + len(first)))
    out, outcome = verify(
        tokens(*first),
        items(*seeds),
        readings or [READING] * len(first),
        decode if retries else no_decode,
        redraw,
        retries,
    )
    return names(out), outcome


def test_retry_seeds_are_derived_distinct_and_in_range() -> None:
    assert retry_seed(123, 0) == 123
    seeds = [retry_seed(123, k) for k in range(1, 10)]
    assert len(set(seeds)) == len(seeds) and 123 not in seeds
    assert all(0 <= s < 2**63 for s in seeds)
    assert seeds == [retry_seed(123, k) for k in range(1, 10)]  # the same every time


def test_retries_sample_more_freely_than_a_first_attempt() -> None:
    temps = [retry_temperature(k) for k in range(1, 12)]
    assert all(t > DEFAULT_TEMPERATURE for t in temps)
    assert temps[0] < max(temps)  # the first retry is the least free


def test_a_right_first_attempt_is_checked_once_and_never_redrawn() -> None:
    redraw = FakeRedraw()
    got, outcome = run(["right", "right"], redraw)
    assert got == ["right", "right"] and redraw.calls == []
    assert outcome == Outcome(checked=2, missed_first=0, retries=0, still_wrong=0)


def test_a_miss_is_redrawn_with_derived_seeds_and_freer_temperatures() -> None:
    redraw = FakeRedraw("close", "close", "close", "close")
    got, outcome = run(["right", "far"], redraw, retries=4, seeds=[5, 6])
    # Only the miss is redrawn, each attempt with its derived seed and temperature: the
    # plain attempts together, then (no plans here) the rest together.
    assert [len(c) for c in redraw.calls] == [PLAIN_ATTEMPTS, 4 - PLAIN_ATTEMPTS]
    sent = [c for call in redraw.calls for c in call]
    assert [c.seed for c in sent] == [retry_seed(6, k) for k in range(1, 5)]
    temps = [float(c.temperature or 0.0) for c in sent]
    assert temps == [retry_temperature(k) for k in range(1, 5)]
    assert all(t > DEFAULT_TEMPERATURE for t in temps)
    assert all(c.prompt == "asked" for c in sent)
    assert got == ["right", "close"]  # the closest attempt is kept when all miss
    assert outcome == Outcome(checked=2, missed_first=1, retries=4, still_wrong=1)


def test_a_right_redraw_is_kept_and_ends_the_redraws() -> None:
    redraw = FakeRedraw("far", "right", "close")
    got, outcome = run(["far"], redraw)
    assert got == ["right"] and len(redraw.calls) == 1  # no attempt after the plain ones
    assert outcome == Outcome(checked=1, missed_first=1, retries=2, still_wrong=0)


def test_the_first_right_attempt_wins_as_if_tried_one_by_one() -> None:
    """Attempts sent together are judged in attempt order: a later right one does not
    replace an earlier right one, whatever their closeness."""
    got, _ = run(["far"], FakeRedraw("right", "right"), retries=2)
    assert got == ["right"]
    redraw = FakeRedraw("close", "right")
    got, _ = run(["far"], redraw, retries=2)
    assert got == ["right"]


def test_a_worse_redraw_is_not_kept() -> None:
    got, outcome = run(["close"], FakeRedraw("far", "far"), retries=2)
    assert got == ["close"]
    assert outcome == Outcome(checked=1, missed_first=1, retries=2, still_wrong=1)


def test_a_closer_miss_replaces_a_far_one() -> None:
    got, _ = run(["far"], FakeRedraw("close", "far"), retries=2)
    assert got == ["close"]


@pytest.mark.parametrize("retries", [1, 2, 3])
def test_the_attempt_budget_is_respected(retries: int) -> None:
    redraw = FakeRedraw(*["far"] * 10)
    _, outcome = run(["far"], redraw, retries=retries)
    assert sum(len(c) for c in redraw.calls) == retries
    assert outcome == Outcome(checked=1, missed_first=1, retries=retries, still_wrong=1)


def test_no_retries_means_no_checking_at_all() -> None:
    redraw = FakeRedraw()
    got, outcome = run(["far", "right"], redraw, retries=0)  # decode would raise
    assert got == ["far", "right"] and redraw.calls == []
    assert outcome == Outcome()


def test_text_outside_the_grammar_is_not_checked() -> None:
    redraw = FakeRedraw("right", "far")
    got, outcome = run(["far", "far"], redraw, readings=[FREE_TEXT, READING])
    assert got == ["far", "right"]
    assert [len(c) for c in redraw.calls] == [PLAIN_ATTEMPTS]  # image 1's attempts only
    assert outcome == Outcome(checked=1, missed_first=1, retries=2, still_wrong=0)


def test_several_misses_are_redrawn_together_until_each_is_right() -> None:
    # Images 0, 2 and 3 miss. Their plain attempts (1 and 2) go out in one call, image by
    # image: 0 gets right then far, 2 close then close, 3 right then far; image 2 alone
    # is left, and its attempts 3 and 4 go out together.
    redraw = FakeRedraw("right", "far", "close", "close", "right", "far", "far", "far")
    got, outcome = run(["far", "right", "close", "far"], redraw, seeds=[1, 2, 3, 4])
    assert [[c.seed for c in call] for call in redraw.calls] == [
        [retry_seed(s, k) for s in (1, 3, 4) for k in (1, 2)],
        [retry_seed(3, 3), retry_seed(3, 4)],
    ]
    assert got == ["right", "right", "close", "right"]
    assert outcome == Outcome(checked=4, missed_first=3, retries=8, still_wrong=1)


def test_verify_leaves_the_callers_tokens_alone() -> None:
    first = tokens("far")
    out, _ = verify(first, items(1), [READING], decode, FakeRedraw("right", "far"), 4)
    assert names(first) == ["far"] and names(out) == ["right"]


def test_redraws_step_by_step_keep_the_other_fields_of_a_conditioning() -> None:
    source, keep = np.ones((64, 2), np.int64), np.zeros(64, bool)
    edit = Conditioning("make the circle red", 9, source, keep)
    redraws = Redraws([READING], retries=1)
    redraws.first(tokens("far"), decode)
    again = redraws.next([edit])
    assert again is not None and len(again) == 1
    assert again[0].seed == retry_seed(9, 1) and again[0].temperature == retry_temperature(1)
    assert again[0].source is source and again[0].keep is keep
    assert again[0].prompt == edit.prompt
    redraws.take(tokens("right"), decode)
    assert redraws.next([edit]) is None
    assert redraws.tokens is not None and names(redraws.tokens) == ["right"]
    assert redraws.outcome == Outcome(checked=1, missed_first=1, retries=1, still_wrong=0)


def test_outcomes_add_up() -> None:
    total = Outcome(1, 1, 2, 0)
    total.add(Outcome(3, 2, 5, 1))
    assert total == Outcome(4, 3, 7, 1)


def test_after_the_plain_redraws_a_plan_runs_stage_by_stage() -> None:
    """Attempts past PLAIN_ATTEMPTS follow the reading's plan: its first stage renders,
    its second edits the first one's result, only the last stage is checked, and a
    user's mask still holds in every edit stage."""
    editable = np.zeros(64, bool)
    editable[:8] = True
    plan = (Stage("the rest", edit=False), Stage("add the one", True, editable))
    reading = replace(READING, plans=(plan,))
    # Two plain redraws (one call) miss; the plan's first stage is anything, its last
    # stage is right.
    redraw = FakeRedraw("far", "far", "far", "right")
    mask_keep = np.zeros(64, bool)
    mask_keep[-8:] = True
    item = Conditioning("asked", 7, np.zeros((64, 2), np.int64), mask_keep)
    out, outcome = verify(tokens("far"), [item], [reading], decode, redraw, retries=3)
    assert names(out) == ["right"]
    assert outcome == Outcome(checked=1, missed_first=1, retries=3, still_wrong=0)
    assert [len(c) for c in redraw.calls] == [2, 1, 1]
    first, second = redraw.calls[1][0], redraw.calls[2][0]
    assert PLAIN_ATTEMPTS == 2
    assert first.prompt == "the rest" and first.source is None
    assert second.prompt == "add the one"
    assert second.source is not None and (second.source == tokens("far")[0]).all()
    assert second.keep is not None
    assert (second.keep == (~editable | mask_keep)).all()
    assert first.seed != second.seed


def test_quality_buys_redraws() -> None:
    assert retries_for("low", 5) == 0
    assert retries_for("medium", 5) == 5
    assert retries_for("high", 5) == 10
