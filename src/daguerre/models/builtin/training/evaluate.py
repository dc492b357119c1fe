"""``daguerre eval builtin``: fresh test sets, scored by the checker, never by the model.

Test sets come from seeds that training never uses. Every set is scored on grammar
captions only (free text has no ground truth).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from daguerre.models.base import RenderRequest
from daguerre.models.builtin import checker, grammar
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.builtin.scene import (
    Scene,
    render,
    sample_object,
    sample_scene,
)
from daguerre.models.builtin.training.data import HELD_OUT, sample_edit_example

EVAL_SEED = 20_261_127  # training uses seed 0 (train.TRAIN_SEED)


@dataclass
class Score:
    name: str
    n: int = 0
    ok: int = 0
    colour: int = 0
    shape: int = 0
    position: int = 0
    objects: int = 0
    size: int = 0
    size_total: int = 0
    changed_outside_mask: int = 0
    samples: list[tuple[str, Image.Image, bool]] = field(default_factory=list)

    def add(self, result: checker.CheckResult) -> None:
        self.n += 1
        self.ok += int(result.ok)
        self.colour += result.colour_hits
        self.shape += result.shape_hits
        self.position += result.position_hits
        self.objects += result.objects_expected
        self.size += result.size_hits
        self.size_total += result.size_total

    def record(self, text: str, image: Image.Image, result: checker.CheckResult) -> None:
        """``add``, keeping the first few renders as samples for the grid."""
        self.add(result)
        if len(self.samples) < 6:
            self.samples.append((text, image, result.ok))

    @property
    def rate(self) -> float:
        return self.ok / self.n if self.n else float("nan")

    def row(self) -> dict[str, float | int | str]:
        def frac(a: int, b: int) -> float:
            return round(a / b, 4) if b else float("nan")

        return {
            "set": self.name,
            "n": self.n,
            "fully_right": frac(self.ok, self.n),
            "colour": frac(self.colour, self.objects),
            "shape": frac(self.shape, self.objects),
            "position": frac(self.position, self.objects),
            "size": frac(self.size, self.size_total),
        }


def _held_out_scene(rng: random.Random) -> Scene:
    """A scene with at least one held-out (colour, shape, position) object."""
    colour, shape, position = rng.choice(sorted(HELD_OUT))
    n = rng.randint(1, 3)
    while True:
        scene = sample_scene(rng, n)
        others = [o for o in scene.objects if o.colour != colour and o.position != position][
            : n - 1
        ]
        first = sample_object(
            rng, colours=[colour], positions=[position], allowed=lambda c, s, p: s == shape
        )
        assert first is not None
        if len(others) == n - 1:
            return Scene(scene.background, (first, *others))


def caption_sets(
    rng: random.Random, per_set: int
) -> dict[str, list[tuple[str, grammar.CaptionSpec]]]:
    sets: dict[str, list[tuple[str, grammar.CaptionSpec]]] = {}
    for k in (1, 2, 3):
        sets[f"captions_{k}_object"] = [
            grammar.sample_caption(sample_scene(rng, k), rng) for _ in range(per_set)
        ]
    sets["held_out_combinations"] = [
        grammar.sample_caption(_held_out_scene(rng), rng) for _ in range(per_set)
    ]
    return sets


class _Renderer:
    """Renders test requests in batches, and hands out request seeds in sequence so
    that no two test images of a run share one."""

    def __init__(self, model: BuiltinModel, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.next_seed = 0

    def seeds(self, n: int) -> range:
        start, self.next_seed = self.next_seed, self.next_seed + n
        return range(start, start + n)

    def run(self, requests: list[RenderRequest]) -> list[Image.Image]:
        out: list[Image.Image] = []
        for i in range(0, len(requests), self.batch_size):
            state = self.model.start(requests[i : i + self.batch_size])
            while state.step < state.total_steps:
                state = self.model.step(state)
            out += [r.image for r in self.model.finish(state)]
        return out


def evaluate(
    model: BuiltinModel,
    *,
    per_set: int = 200,
    per_edit_kind: int = 100,
    masked: int = 100,
    seed: int = EVAL_SEED,
    batch_size: int = 64,
    log: Callable[[str], None] = print,
) -> dict[str, Score]:
    """Score ``model`` on fresh caption sets, each edit kind and masked edits."""
    rng = random.Random(seed)
    renderer = _Renderer(model, batch_size)
    scores = _score_captions(rng, renderer, per_set)
    scores.update(_score_edits(rng, renderer, per_edit_kind))
    masked_score = scores["edit_masked"] = _score_masked(rng, renderer, masked)
    for score in scores.values():
        log("  ".join(f"{k}={v}" for k, v in score.row().items()))
    log(f"masked edits: pixels changed outside the mask = {masked_score.changed_outside_mask}")
    return scores


def _score_captions(rng: random.Random, renderer: _Renderer, per_set: int) -> dict[str, Score]:
    """Every caption set, and the 1-to-3-object sets summed as one."""
    scores: dict[str, Score] = {}
    for name, items in caption_sets(rng, per_set).items():
        score = scores[name] = Score(name)
        seeds = renderer.seeds(len(items))
        requests = [RenderRequest(text, seed=s) for s, (text, _) in zip(seeds, items, strict=True)]
        for (text, spec), image in zip(items, renderer.run(requests), strict=True):
            score.record(text, image, checker.check(image, spec))
    mixed = Score("captions_1_to_3_mixed")
    for k in (1, 2, 3):
        s = scores[f"captions_{k}_object"]
        for attr in ("n", "ok", "colour", "shape", "position", "objects", "size", "size_total"):
            setattr(mixed, attr, getattr(mixed, attr) + getattr(s, attr))
    scores[mixed.name] = mixed
    return scores


def _score_edits(rng: random.Random, renderer: _Renderer, per_kind: int) -> dict[str, Score]:
    """Every edit kind on unmasked sources, and all of them summed as one."""
    scores: dict[str, Score] = {}
    all_edits = Score("edits_all")
    for kind in grammar.EDIT_KINDS:
        score = scores[f"edit_{kind}"] = Score(f"edit_{kind}")
        examples = [sample_edit_example(rng, kind, training=False) for _ in range(per_kind)]
        seeds = renderer.seeds(len(examples))
        requests = [
            RenderRequest(edit.text(), seed=s, source=Image.fromarray(render(src)))
            for s, (src, edit, _) in zip(seeds, examples, strict=True)
        ]
        for (_, edit, result_scene), image in zip(examples, renderer.run(requests), strict=True):
            result = checker.check(image, grammar.expected_spec(result_scene, edit))
            score.record(f"{edit.text()}", image, result)
            all_edits.add(result)
    scores[all_edits.name] = all_edits
    return scores


def _score_masked(rng: random.Random, renderer: _Renderer, masked: int) -> Score:
    """Masked edits: the mask covers the edited object's area and where it goes, and no
    pixel outside it may change."""
    score = Score("edit_masked")
    examples = [
        sample_edit_example(rng, rng.choice(grammar.EDIT_KINDS[:5]), training=False)
        for _ in range(masked)
    ]
    requests, sources = [], []
    for s, (src, edit, result_scene) in zip(renderer.seeds(masked), examples, strict=True):
        source = Image.fromarray(render(src))
        mask = _mask_for(src, result_scene)
        requests.append(RenderRequest(edit.text(), seed=s, source=source, mask=mask))
        sources.append((source, mask))
    for (_, edit, result_scene), (source, mask), image in zip(
        examples, sources, renderer.run(requests), strict=True
    ):
        score.add(checker.check(image, grammar.expected_spec(result_scene, edit)))
        keep = np.asarray(mask)[..., 3] != 0
        changed = (np.asarray(image.convert("RGB")) != np.asarray(source.convert("RGB"))).any(-1)
        score.changed_outside_mask += int((changed & keep).sum())
    return score


def _mask_for(before: Scene, after: Scene, resolution: int = 64) -> Image.Image:
    """RGBA mask, transparent where the two scenes differ (grown by one patch), opaque elsewhere."""
    diff = (render(before, resolution) != render(after, resolution)).any(-1)
    if not diff.any():
        diff[:] = True
    grow = resolution // 8
    ys, xs = np.nonzero(diff)
    area = np.zeros_like(diff)
    area[
        max(0, ys.min() - grow) : ys.max() + grow + 1, max(0, xs.min() - grow) : xs.max() + grow + 1
    ] = True
    rgba = np.full((resolution, resolution, 4), 255, np.uint8)
    rgba[area, 3] = 0
    return Image.fromarray(rgba, "RGBA")


def sample_grid(scores: dict[str, Score], path: Path, cell: int = 128) -> None:
    """A PNG of sample renders per set, framed green (right) or red (wrong)."""
    rows = [s for s in scores.values() if s.samples]
    cols = max(len(s.samples) for s in rows)
    label_w = 190
    grid = Image.new("RGB", (label_w + cols * (cell + 8), len(rows) * (cell + 8)), "white")
    draw = ImageDraw.Draw(grid)
    for r, score in enumerate(rows):
        y = r * (cell + 8) + 4
        draw.text((4, y + cell // 2 - 6), f"{score.name} {score.rate:.0%}", fill="black")
        for c, (_, image, ok) in enumerate(score.samples):
            x = label_w + c * (cell + 8) + 4
            draw.rectangle(
                (x - 3, y - 3, x + cell + 2, y + cell + 2),
                outline="green" if ok else "red",
                width=3,
            )
            grid.paste(image.resize((cell, cell), Image.Resampling.NEAREST), (x, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
