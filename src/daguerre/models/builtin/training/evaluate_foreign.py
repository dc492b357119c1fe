"""``daguerre eval builtin --sources foreign`` and ``--chains N``: edits of pictures the
model did not draw, and edits of its own edits.

Foreign sources come from ``foreign.RENDERERS`` (held out of training). Chains start from
our own render and feed each turn's RESULT image to the next turn, so errors compound as
they would in a conversation; only the final picture is scored, against the expected
final scene. Every verdict is the checker's, as in ``evaluate``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from PIL import Image

from daguerre.models.base import RenderRequest
from daguerre.models.builtin import checker, grammar
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.builtin.scene import Scene, render, sample_scene
from daguerre.models.builtin.training.data import sample_edit_example
from daguerre.models.builtin.training.evaluate import EVAL_SEED, Score, _Renderer
from daguerre.models.builtin.training.foreign import RENDERERS

_COUNTS = ("n", "ok", "colour", "shape", "position", "objects", "size", "size_total")


def _pool(name: str, parts: list[Score]) -> Score:
    """One score summing ``parts`` (samples are not kept)."""
    pooled = Score(name)
    for part in parts:
        for attr in _COUNTS:
            setattr(pooled, attr, getattr(pooled, attr) + getattr(part, attr))
    return pooled


def evaluate_foreign(
    model: BuiltinModel,
    *,
    per_kind: int = 100,
    seed: int = EVAL_SEED,
    batch_size: int = 64,
    log: Callable[[str], None] = print,
) -> dict[str, Score]:
    """Each edit kind on sources drawn by each foreign renderer; a pooled row per renderer
    (``foreign_<renderer>_all``) and one for all renderers (``foreign_all``)."""
    rng = random.Random(seed)
    runner = _Renderer(model, batch_size)
    scores: dict[str, Score] = {}
    per_renderer: list[Score] = []
    for name, draw in RENDERERS.items():
        kinds = [
            _score_kind(rng, runner, name, draw, kind, per_kind) for kind in grammar.EDIT_KINDS
        ]
        scores.update({s.name: s for s in kinds})
        pooled = scores[f"foreign_{name}_all"] = _pool(f"foreign_{name}_all", kinds)
        per_renderer.append(pooled)
    scores["foreign_all"] = _pool("foreign_all", per_renderer)
    for score in scores.values():
        log("  ".join(f"{k}={v}" for k, v in score.row().items()))
    return scores


def _score_kind(
    rng: random.Random,
    runner: _Renderer,
    name: str,
    draw: Callable[[Scene, random.Random], Image.Image],
    kind: str,
    n: int,
) -> Score:
    score = Score(f"foreign_{name}_{kind}")
    examples = [sample_edit_example(rng, kind, training=False) for _ in range(n)]
    requests = [
        RenderRequest(edit.text(), seed=s, source=draw(src, rng))
        for s, (src, edit, _) in zip(runner.seeds(n), examples, strict=True)
    ]
    for (_, edit, after), image in zip(examples, runner.run(requests), strict=True):
        score.record(edit.text(), image, checker.check(image, grammar.expected_spec(after, edit)))
    return score


class _Chain:
    """One chain's expected scene, and the colours of added objects whose size no
    instruction gave (either size is right for them, as in ``grammar.expected_spec``)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.free_size: set[str] = set()
        self.edits: list[str] = []

    def next_edit(self, rng: random.Random) -> grammar.Edit:
        edit = grammar.sample_edit(self.scene, rng)
        before = self.scene
        self.scene = grammar.apply_edit(before, edit, rng)
        if edit.kind == "add" and edit.added is not None and edit.added.size is None:
            self.free_size.add(edit.added.colour)
        elif edit.kind in ("recolour", "remove"):
            old = before.objects[grammar.resolve(before, edit)].colour
            if old in self.free_size:
                self.free_size.discard(old)
                if edit.kind == "recolour" and edit.value is not None:
                    self.free_size.add(edit.value)
        self.edits.append(edit.text())
        return edit

    def spec(self) -> grammar.CaptionSpec:
        spec = grammar.spec_of(self.scene)
        objects = tuple(
            replace(o, size=None) if o.colour in self.free_size else o for o in spec.objects
        )
        return grammar.CaptionSpec(spec.background, objects)


def evaluate_chains(
    model: BuiltinModel,
    *,
    chains: int = 100,
    turns: int = 5,
    seed: int = EVAL_SEED,
    batch_size: int = 64,
    log: Callable[[str], None] = print,
) -> Score:
    """``chains`` chains of ``turns`` random edits, each turn editing the previous result
    image; the score is of the final pictures (``fully_right`` is the chain success rate)."""
    rng = random.Random(seed + 1)  # not the foreign sets' stream
    runner = _Renderer(model, batch_size)
    states = [_Chain(sample_scene(rng)) for _ in range(chains)]
    images = [Image.fromarray(render(c.scene)) for c in states]
    for _ in range(turns):
        edits = [c.next_edit(rng) for c in states]
        requests = [
            RenderRequest(edit.text(), seed=s, source=image)
            for s, edit, image in zip(runner.seeds(chains), edits, images, strict=True)
        ]
        images = runner.run(requests)
    score = Score(f"chains_{turns}_turns")
    for chain, image in zip(states, images, strict=True):
        score.record(" / ".join(chain.edits), image, checker.check(image, chain.spec()))
    log("  ".join(f"{k}={v}" for k, v in score.row().items()))
    return score
