"""The checker scores the model, so it has to be right on both sides.

It must accept every correct render at every resolution we serve, reject captions that are
wrong in any one way, and read handmade scenes exactly. Everything is seeded.
"""

from __future__ import annotations

import io
import itertools
import random
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from daguerre.models.builtin import scene as S
from daguerre.models.builtin.checker import CheckResult, check, check_scene, read_scene
from daguerre.models.builtin.grammar import CaptionSpec, ObjectSpec, sample_caption

N_CORRECT = 2000
N_MISMATCHED = 1000
# Rendering at 1024 takes ~25 ms a scene here (512: ~10 ms), so 2,000 direct 1024 renders
# alone would blow the file's ~60 s budget. At 1024 we therefore check all 2,000 scenes as
# their 64 px render upscaled by nearest neighbour (the way a 64 px model output is served
# large) plus this many rendered at 1024 directly; test_reads_every_object_exactly also
# renders every possible object (shape x size x jitter x position) at 1024 directly.
N_DIRECT_1024 = 150


def _corpus(n: int, seed: int) -> list[tuple[S.Scene, CaptionSpec]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        scene = S.sample_scene(rng, mix=(1, 1, 1))  # evenly mixed 1/2/3-object scenes
        out.append((scene, sample_caption(scene, rng)[1]))
    return out


@pytest.fixture(scope="module")
def corpus() -> list[tuple[S.Scene, CaptionSpec]]:
    return _corpus(N_CORRECT, seed=1234)


def _failures(results: list[tuple[S.Scene, CheckResult]]) -> list[str]:
    return [f"{scene}: {r.reasons}" for scene, r in results if not r.ok]


def _upscale(image: np.ndarray, factor: int) -> Image.Image:
    h, w = image.shape[:2]
    return Image.fromarray(image).resize((w * factor, h * factor), Image.Resampling.NEAREST)


def _jpeg(image: np.ndarray, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


# ---------------------------------------------------------------------------
# Every correct render is accepted


@pytest.mark.parametrize("resolution", [64, 256, 512])
def test_accepts_every_correct_render(
    corpus: list[tuple[S.Scene, CaptionSpec]], resolution: int
) -> None:
    results = []
    for scene, spec in corpus:
        image = S.render(scene, resolution)
        results.append((scene, check(image, spec)))
        # Sizes the caption leaves out are right too.
        results.append((scene, check_scene(image, scene)))
    assert _failures(results) == []


def test_accepts_every_correct_render_at_1024(
    corpus: list[tuple[S.Scene, CaptionSpec]],
) -> None:
    upscaled = [(sc, check(_upscale(S.render(sc, 64), 16), spec)) for sc, spec in corpus]
    assert _failures(upscaled) == []
    direct = [(sc, check(S.render(sc, 1024), spec)) for sc, spec in corpus[:N_DIRECT_1024]]
    assert _failures(direct) == []


@pytest.mark.parametrize("resolution", [64, 96, 256, 512, 1024])
def test_reads_every_object_exactly(resolution: int) -> None:
    """All 150 objects the world can hold (jitter included), each read back exactly.

    Objects in a scene never overlap, and each is read from its own colour's pixels, so this
    sweep covers every object any correct scene can contain.
    """
    colours, backgrounds = itertools.cycle(S.COLOURS), itertools.cycle(S.BACKGROUNDS)
    for shape, size, position in itertools.product(S.SHAPES, S.SIZES, S.POSITIONS):
        jitters = itertools.product(S.JITTER_UNITS, repeat=2) if size == "small" else [(0, 0)]
        for offset in jitters:
            obj = S.SceneObject(next(colours), shape, size, position, offset)
            read = read_scene(S.render(S.Scene(next(backgrounds), (obj,)), resolution))
            assert len(read.objects) == 1, (obj, read)
            got = read.objects[0]
            assert (got.colour, got.shape, got.size, got.position) == (
                obj.colour,
                shape,
                size,
                position,
            ), (obj, got)
            assert abs(got.centre[0] - obj.centre[0]) <= 0.5, (obj, got)
            assert abs(got.centre[1] - obj.centre[1]) <= 0.5, (obj, got)


# ---------------------------------------------------------------------------
# Mismatched captions are rejected

PERTURBATIONS = (
    "colour",
    "shape",
    "position",
    "size",
    "background",
    "missing",
    "extra",
    "swap_colours",
    "swap_positions",
)


def _perturb(spec: CaptionSpec, scene: S.Scene, kind: str, rng: random.Random) -> CaptionSpec:
    """``spec`` made wrong in exactly one way, staying inside the world (distinct colours
    and positions, 1 to 3 objects), so only the pixels can tell."""
    objs = list(spec.objects)
    i = rng.randrange(len(objs))
    used_c = {o.colour for o in objs}
    used_p = {o.position for o in objs}
    if kind == "colour":
        objs[i] = replace(objs[i], colour=rng.choice([c for c in S.COLOURS if c not in used_c]))
    elif kind == "shape":
        objs[i] = replace(objs[i], shape=rng.choice([s for s in S.SHAPES if s != objs[i].shape]))
    elif kind == "position":
        free = [p for p in S.POSITIONS if p not in used_p]
        objs[i] = replace(objs[i], position=rng.choice(free))
    elif kind == "size":
        # Name the wrong size, whether or not the caption named the size at all.
        true_size = scene.objects[i].size
        objs[i] = replace(objs[i], size="large" if true_size == "small" else "small")
    elif kind == "background":
        bg = rng.choice([b for b in S.BACKGROUNDS if b != spec.background])
        return CaptionSpec(bg, spec.objects)
    elif kind == "missing":
        del objs[i]
    elif kind == "extra":
        objs.append(
            ObjectSpec(
                rng.choice([c for c in S.COLOURS if c not in used_c]),
                rng.choice(S.SHAPES),
                rng.choice([p for p in S.POSITIONS if p not in used_p]),
                rng.choice([*S.SIZES, None]),
            )
        )
    elif kind in ("swap_colours", "swap_positions"):
        # A binding error: every word is in the picture, attached to the wrong object.
        j = rng.choice([k for k in range(len(objs)) if k != i])
        attr = "colour" if kind == "swap_colours" else "position"
        a, b = getattr(objs[i], attr), getattr(objs[j], attr)
        objs[i], objs[j] = replace(objs[i], **{attr: b}), replace(objs[j], **{attr: a})
    else:
        raise ValueError(kind)
    return CaptionSpec(spec.background, tuple(objs))


def _expected_counts(kind: str, r: CheckResult) -> bool:
    """The per-attribute counts say which way the caption was wrong."""
    n = r.objects_expected
    if kind == "colour":
        return r.colour_hits == n - 1 and r.extra_objects == 1
    if kind == "shape":
        return r.colour_hits == r.position_hits == n and r.shape_hits == n - 1
    if kind == "position":
        return r.colour_hits == r.shape_hits == n and r.position_hits == n - 1
    if kind == "size":
        return r.colour_hits == n and r.size_hits == r.size_total - 1
    if kind == "background":
        hits = (r.colour_hits, r.shape_hits, r.position_hits)
        return not r.background_ok and hits == (n, n, n) and r.size_hits == r.size_total
    if kind == "missing":
        return r.colour_hits == r.shape_hits == r.position_hits == n and r.extra_objects == 1
    if kind == "extra":
        return r.colour_hits == r.shape_hits == r.position_hits == n - 1 and r.extra_objects == 0
    if kind == "swap_colours":  # two objects: right colours, both at the wrong positions
        return r.colour_hits == n and r.position_hits == n - 2
    if kind == "swap_positions":
        return r.colour_hits == n and r.position_hits == n - 2
    raise ValueError(kind)


def test_rejects_mismatched_captions(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(99)
    accepted: Counter[str] = Counter()
    total: Counter[str] = Counter()
    bad_counts = []
    for t in range(N_MISMATCHED):
        kind = PERTURBATIONS[t % len(PERTURBATIONS)]
        needs_two = kind in ("missing", "swap_colours", "swap_positions")
        n_objects = rng.choice((2, 3) if needs_two else (1, 2) if kind == "extra" else (1, 2, 3))
        scene = S.sample_scene(rng, n_objects)
        _, spec = sample_caption(scene, rng)
        wrong = _perturb(spec, scene, kind, rng)
        r = check(S.render(scene, 64 if t % 2 else 256), wrong)
        total[kind] += 1
        accepted[kind] += r.ok
        if not _expected_counts(kind, r):
            bad_counts.append((kind, scene, wrong, r))
    with capsys.disabled():
        print("\nrejection of mismatched captions, per perturbation:")
        for kind in PERTURBATIONS:
            rate = 1 - accepted[kind] / total[kind]
            print(f"  {kind:15s} {total[kind] - accepted[kind]:4d}/{total[kind]:4d} = {rate:.1%}")
    assert sum(accepted.values()) < 0.01 * N_MISMATCHED
    for kind in PERTURBATIONS:
        assert accepted[kind] < 0.01 * total[kind], kind
    assert bad_counts == []


def test_a_missing_colour_is_a_miss_on_everything() -> None:
    scene = S.Scene("white", (S.SceneObject("red", "circle", "large", "left"),))
    spec = CaptionSpec(
        "white",
        (
            ObjectSpec("red", "circle", "left", "large"),
            ObjectSpec("blue", "square", "top", "small"),
        ),
    )
    r = check(S.render(scene), spec)
    assert not r.ok
    assert (r.objects_expected, r.objects_detected, r.extra_objects) == (2, 1, 0)
    assert (r.colour_hits, r.shape_hits, r.position_hits) == (1, 1, 1)
    assert (r.size_hits, r.size_total) == (1, 2)
    assert r.background_ok


# ---------------------------------------------------------------------------
# Handmade scenes


@pytest.mark.parametrize("background", list(S.BACKGROUNDS))
def test_reads_each_shape_and_size(background: str) -> None:
    for (shape, size), colour in zip(
        itertools.product(S.SHAPES, S.SIZES), itertools.cycle(S.COLOURS), strict=False
    ):
        scene = S.Scene(background, (S.SceneObject(colour, shape, size, "center"),))
        read = read_scene(S.render(scene, 128))
        assert read.background == background
        assert read.foreign_regions == 0
        [got] = read.objects
        assert (got.colour, got.shape, got.size, got.position) == (colour, shape, size, "center")
        assert got.extent == pytest.approx((S.SIZES[size],) * 2, abs=0.5)


def test_reads_a_three_object_scene_with_touching_objects() -> None:
    # Large left, center and top objects touch along a boundary; each is still its own region.
    scene = S.Scene(
        "gray",
        (
            S.SceneObject("red", "square", "large", "left"),
            S.SceneObject("orange", "square", "large", "center"),
            S.SceneObject("yellow", "triangle", "large", "top"),
        ),
    )
    read = read_scene(S.render(scene, 64))
    got = {(o.colour, o.shape, o.size, o.position) for o in read.objects}
    assert got == {(o.colour, o.shape, o.size, o.position) for o in scene.objects}
    assert check_scene(S.render(scene, 64), scene).ok


def test_jittered_small_objects_keep_their_position() -> None:
    for position, (dx, dy) in itertools.product(S.POSITIONS, [(-1, -1), (1, 1), (-1, 1)]):
        obj = S.SceneObject("purple", "circle", "small", position, (dx, dy))
        [got] = read_scene(S.render(S.Scene("black", (obj,)), 64)).objects
        assert got.position == position
        assert got.centre == pytest.approx(obj.centre, abs=0.5)


def test_accepts_jpeg_at_512() -> None:
    for scene, spec in _corpus(25, seed=7):
        image = _jpeg(S.render(scene, 512), quality=75)
        r = check(image, spec)
        assert r.ok, (scene, r.reasons)


def test_accepts_smoothly_upscaled_and_slightly_noisy_images() -> None:
    noise = np.random.default_rng(0)
    for scene, spec in _corpus(40, seed=8):
        small = S.render(scene, 64)
        bicubic = Image.fromarray(small).resize((512, 512), Image.Resampling.BICUBIC)
        assert check(bicubic, spec).ok, scene
        noisy = np.clip(small + noise.normal(0, 10, small.shape), 0, 255).astype(np.uint8)
        assert check(noisy, spec).ok, scene
        # A few stray palette-coloured pixels, as an imperfect model output might have.
        speckled = small.copy()
        ys, xs = noise.integers(0, 64, (2, 10))
        speckled[ys, xs] = S.PALETTE[noise.integers(0, len(S.PALETTE), 10)]
        assert check(speckled, spec).ok, scene


def test_ignores_specks_and_thin_fringes() -> None:
    scene = S.Scene("white", (S.SceneObject("red", "square", "large", "center"),))
    image = S.render(scene, 64)
    image[2:4, 2:4] = S.COLOURS["green"]  # a 2x2 speck of an unused object colour
    image[60, 5:40] = S.COLOURS["blue"]  # a long line one pixel thick
    image[9, 9:55] = S.BACKGROUNDS["black"]  # a thin line of another background colour
    r = check_scene(image, scene)
    assert r.ok, r.reasons
    assert r.read.foreign_regions == 0


def test_rejects_an_unnamed_blob_a_duplicate_colour_and_a_foreign_region() -> None:
    scene = S.Scene("white", (S.SceneObject("red", "circle", "large", "left"),))
    blob = S.render(scene, 64)
    blob[40:52, 40:52] = S.COLOURS["blue"]  # an object the caption does not name
    r = check_scene(blob, scene)
    assert not r.ok and r.extra_objects == 1

    twice = S.render(scene, 64)
    twice[40:52, 40:52] = S.COLOURS["red"]  # the named colour, twice
    r = check_scene(twice, scene)
    assert not r.ok and r.extra_objects == 1 and r.colour_hits == r.shape_hits == 1

    foreign = S.render(scene, 64)
    foreign[40:52, 40:52] = S.BACKGROUNDS["gray"]  # a solid shape in a background colour
    r = check_scene(foreign, scene)
    assert not r.ok and r.foreign_regions == 1 and r.extra_objects == 0


def test_leaves_malformed_shapes_and_sizes_unrecognised() -> None:
    base = S.Scene("black", (S.SceneObject("green", "square", "small", "center"),))
    cases = {}
    inverted = S.render(S.Scene("black", (S.SceneObject("green", "triangle", "large", "center"),)))
    cases["inverted triangle"] = inverted[::-1].copy()
    rect = S.render(S.Scene("black", ()), 64)
    rect[22:42, 16:48] = S.COLOURS["green"]  # 16 x 10 units
    cases["rectangle"] = rect
    mid = S.render(S.Scene("black", ()), 64)
    mid[24:40, 24:40] = S.COLOURS["green"]  # an 8-unit square: neither small nor large
    cases["8-unit square"] = mid
    off = S.render(S.Scene("black", ()), 64)
    off[20:32, 20:32] = S.COLOURS["green"]  # small square centred at (13, 13)
    cases["off-grid square"] = off
    for name, image in cases.items():
        [got] = read_scene(image).objects
        assert None in (got.shape, got.size, got.position), name
        assert not check_scene(image, base).ok, name
    assert read_scene(cases["inverted triangle"]).objects[0].shape is None
    assert read_scene(cases["8-unit square"]).objects[0].size is None
    assert read_scene(cases["off-grid square"]).objects[0].position is None


def test_input_forms() -> None:
    scene = S.Scene("gray", (S.SceneObject("blue", "triangle", "small", "bottom", (1, 0)),))
    rgb = S.render(scene, 256)
    assert check_scene(Image.fromarray(rgb), scene).ok
    assert check_scene(Image.fromarray(rgb).convert("RGBA"), scene).ok
    rgba = np.concatenate([rgb, np.full((256, 256, 1), 255, np.uint8)], axis=2)
    assert check_scene(rgba, scene).ok
    assert check_scene(S.render(scene, 200), scene).ok  # not a power of two
    # Large PIL images are sampled down by Pillow, arrays by numpy: the same pixels either way.
    noise = np.random.default_rng(1)
    for h, w in [(1024, 1024), (200, 200), (300, 170)]:
        image = noise.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image[h // 4 : h // 2, w // 4 : w // 2] = S.COLOURS["red"]
        assert read_scene(Image.fromarray(image)) == read_scene(image)
    with pytest.raises(ValueError):
        read_scene(rgb[:, :, 0])
    with pytest.raises(TypeError):
        read_scene(rgb.astype(np.float32))
