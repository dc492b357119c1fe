from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from daguerre.workers import imaging


def test_fit_scales_with_hard_edges() -> None:
    small = Image.new("RGB", (2, 2), (255, 0, 0))
    small.putpixel((1, 1), (0, 0, 255))
    big = imaging.fit(small, 8, 8)
    assert big.size == (8, 8)
    colours = {colour for _, colour in big.convert("RGB").getcolors()}
    assert colours == {(255, 0, 0), (0, 0, 255)}  # no blends
    assert imaging.fit(small, 2, 2) is small


def test_flat_pictures_become_palette_images_with_the_very_same_pixels() -> None:
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    flat = Image.fromarray(colours[rng.integers(0, 200, (64, 64))], "RGB")
    indexed = imaging.palette(flat)
    assert indexed.mode == "P"
    assert (np.asarray(indexed.convert("RGB")) == np.asarray(flat)).all()
    # ... and so does its PNG, once scaled up the way a response is.
    data = imaging.encode(imaging.fit(flat, 256, 256), "png")
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    expected = np.asarray(flat.resize((256, 256), Image.Resampling.NEAREST))
    assert (decoded == expected).all()
    photo = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    assert imaging.palette(photo) is photo  # thousands of colours: left as it is
    for fmt in ("jpeg", "webp"):  # formats without palettes get RGB
        assert Image.open(io.BytesIO(imaging.encode(indexed, fmt))).mode == "RGB"


@pytest.mark.parametrize(("fmt", "pil"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_encode_formats(fmt: str, pil: str) -> None:
    data = imaging.encode(Image.new("RGBA", (16, 16), (1, 2, 3, 255)), fmt, 80)
    assert Image.open(io.BytesIO(data)).format == pil


def test_compression_sets_quality() -> None:
    noisy = Image.effect_noise((128, 128), 60).convert("RGB")
    assert len(imaging.encode(noisy, "jpeg", 10)) < len(imaging.encode(noisy, "jpeg", 95))


def test_keep_outside_mask_changes_only_transparent_pixels() -> None:
    from PIL import Image

    from daguerre.workers.imaging import keep_outside_mask

    source = Image.new("RGB", (8, 8), (255, 255, 255))
    drawn = Image.new("RGB", (16, 16), (0, 0, 255))
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 4, 8))  # left half may change
    out = keep_outside_mask(drawn, source, mask)
    assert out.size == (16, 16)
    assert out.getpixel((2, 5)) == (0, 0, 255)
    assert out.getpixel((12, 5)) == (255, 255, 255)
