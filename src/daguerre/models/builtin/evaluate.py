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
from daguerre.models.builtin.data import HELD_OUT, sample_edit_example
from daguerre.models.builtin.scene import (
    Scene,
    render,
    sample_object,
    sample_scene,
)

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


def _chunks(n: int, size: int) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


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
    rng = random.Random(seed)
    scores: dict[str, Score] = {}
    req_seed = 0

    def run(requests: list[RenderRequest]) -> list[Image.Image]:
        out: list[Image.Image] = []
        for chunk in _chunks(len(requests), batch_size):
            state = model.start([requests[i] for i in chunk])
            while state.step < state.total_steps:
                state = model.step(state)
            out += [r.image for r in model.finish(state)]
        return out

    for name, items in caption_sets(rng, per_set).items():
        score = scores[name] = Score(name)
        requests = [RenderRequest(text, seed=req_seed + i) for i, (text, _) in enumerate(items)]
        req_seed += len(items)
        for (text, spec), image in zip(items, run(requests), strict=True):
            result = checker.check(image, spec)
            score.add(result)
            if len(score.samples) < 6:
                score.samples.append((text, image, result.ok))
    mixed = Score("captions_1_to_3_mixed")
    for k in (1, 2, 3):
        s = scores[f"captions_{k}_object"]
        for attr in ("n", "ok", "colour", "shape", "position", "objects", "size", "size_total"):
            setattr(mixed, attr, getattr(mixed, attr) + getattr(s, attr))
    scores[mixed.name] = mixed

    all_edits = Score("edits_all")
    for kind in grammar.EDIT_KINDS:
        score = scores[f"edit_{kind}"] = Score(f"edit_{kind}")
        examples = [sample_edit_example(rng, kind, training=False) for _ in range(per_edit_kind)]
        requests = [
            RenderRequest(edit.text(), seed=req_seed + i, source=Image.fromarray(render(src)))
            for i, (src, edit, _) in enumerate(examples)
        ]
        req_seed += len(examples)
        for (_, edit, result_scene), image in zip(examples, run(requests), strict=True):
            result = checker.check(image, grammar.expected_spec(result_scene, edit))
            score.add(result)
            all_edits.add(result)
            if len(score.samples) < 6:
                score.samples.append((f"{edit.text()}", image, result.ok))
    scores[all_edits.name] = all_edits

    # Masked edits: the mask covers the edited object's area and where it goes.
    masked_score = scores["edit_masked"] = Score("edit_masked")
    examples = [
        sample_edit_example(rng, rng.choice(grammar.EDIT_KINDS[:5]), training=False)
        for _ in range(masked)
    ]
    requests, sources = [], []
    for i, (src, edit, result_scene) in enumerate(examples):
        source = Image.fromarray(render(src))
        mask = _mask_for(src, result_scene)
        requests.append(RenderRequest(edit.text(), seed=req_seed + i, source=source, mask=mask))
        sources.append((source, mask))
    for (_, edit, result_scene), (source, mask), image in zip(
        examples, sources, run(requests), strict=True
    ):
        masked_score.add(checker.check(image, grammar.expected_spec(result_scene, edit)))
        keep = np.asarray(mask)[..., 3] != 0
        changed = (np.asarray(image.convert("RGB")) != np.asarray(source.convert("RGB"))).any(-1)
        masked_score.changed_outside_mask += int((changed & keep).sum())

    for score in scores.values():
        log("  ".join(f"{k}={v}" for k, v in score.row().items()))
    log(f"masked edits: pixels changed outside the mask = {masked_score.changed_outside_mask}")
    return scores


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
