"""Check an image against a caption: the verdict behind every score of the built-in model.

The scene is read from pixels alone (``reading``), never from the model, so the model is
scored without trusting the model. Expected objects are then matched to detected ones by
colour, and every attribute the caption states must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daguerre.models.builtin.grammar import CaptionSpec, ObjectSpec, spec_of
from daguerre.models.builtin.reading import (
    DetectedObject,
    ReadScene,
    palette_indices,
    read_scene,
)
from daguerre.models.builtin.scene import Scene


@dataclass(frozen=True)
class CheckResult:
    """The verdict, plus per-attribute counts that an evaluation can sum over many samples.

    Expected objects are matched to detected ones by colour; an expected object whose colour
    is missing counts as a miss on colour, shape, position and size (if it has one).
    """

    ok: bool
    background_ok: bool
    objects_expected: int
    objects_detected: int
    colour_hits: int
    shape_hits: int
    position_hits: int
    size_hits: int
    size_total: int  # expected objects whose size the spec gives
    extra_objects: int  # detected objects no expected object claimed
    foreign_regions: int
    read: ReadScene
    reasons: tuple[str, ...] = field(default=())  # why not ok, for humans


@dataclass
class _Tally:
    """Running counts while expected objects are matched to detected ones."""

    free: list[DetectedObject]  # detected objects no expected object has claimed yet
    reasons: list[str]
    colour_hits: int = 0
    shape_hits: int = 0
    position_hits: int = 0
    size_hits: int = 0
    size_total: int = 0


def _score(exp: ObjectSpec, obj: DetectedObject) -> tuple[int, int]:
    hits = (exp.shape == obj.shape) + (exp.position == obj.position) + (exp.size == obj.size)
    return hits, obj.pixels


def _match(exp: ObjectSpec, tally: _Tally) -> None:
    """Claim the detected object of ``exp``'s colour and count what it gets right."""
    if exp.size is not None:
        tally.size_total += 1
    candidates = [o for o in tally.free if o.colour == exp.colour]
    if not candidates:
        tally.reasons.append(f"no {exp.colour} object")
        return
    # Should one colour show up twice (never in a true render), keep the better match.
    obj = max(candidates, key=lambda o: _score(exp, o))
    tally.free.remove(obj)
    tally.colour_hits += 1
    tally.shape_hits += obj.shape == exp.shape
    tally.position_hits += obj.position == exp.position
    tally.size_hits += exp.size is not None and obj.size == exp.size
    for attr in ("shape", "position", "size"):
        want, got = getattr(exp, attr), getattr(obj, attr)
        if want is not None and want != got:
            tally.reasons.append(f"{exp.colour} object: {attr} is {got}, not {want}")


def check(image: Any, spec: CaptionSpec) -> CheckResult:
    """Does ``image`` match ``spec``? See the domain page's "What counts as correct"."""
    return judge(read_scene(image), spec)


def judge(read: ReadScene, spec: CaptionSpec) -> CheckResult:
    """``check`` of a scene already read from pixels."""
    tally = _Tally(free=list(read.objects), reasons=[])
    background_ok = read.background == spec.background
    if not background_ok:
        tally.reasons.append(f"background is {read.background}, not {spec.background}")
    for exp in spec.objects:
        _match(exp, tally)
    for obj in tally.free:
        tally.reasons.append(f"extra {obj.colour} object ({obj.shape}, {obj.position})")
    if read.foreign_regions:
        tally.reasons.append(f"{read.foreign_regions} solid region(s) in another background colour")
    n = len(spec.objects)
    ok = (
        background_ok
        and not tally.free
        and not read.foreign_regions
        and tally.colour_hits == tally.shape_hits == tally.position_hits == n
        and tally.size_hits == tally.size_total
    )
    return CheckResult(
        ok=ok,
        background_ok=background_ok,
        objects_expected=n,
        objects_detected=len(read.objects),
        colour_hits=tally.colour_hits,
        shape_hits=tally.shape_hits,
        position_hits=tally.position_hits,
        size_hits=tally.size_hits,
        size_total=tally.size_total,
        extra_objects=len(tally.free),
        foreign_regions=read.foreign_regions,
        read=read,
        reasons=tuple(tally.reasons),
    )


def check_scene(image: Any, scene: Scene) -> CheckResult:
    """``check`` against the full spec of ``scene``, sizes included."""
    return check(image, spec_of(scene, with_sizes=True))


__all__ = [
    "CheckResult",
    "DetectedObject",
    "ReadScene",
    "check",
    "check_scene",
    "judge",
    "palette_indices",
    "read_scene",
]
