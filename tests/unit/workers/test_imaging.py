from __future__ import annotations

import io

import pytest
from PIL import Image

from daguerre.workers import imaging


def test_fit_scales_with_hard_edges() -> None:
    small = Image.new("RGB", (2, 2), (255, 0, 0))
    small.putpixel((1, 1), (0, 0, 255))
    big = imaging.fit(small, 8, 8)
    assert big.size == (8, 8)
    assert {colour for _, colour in big.getcolors()} == {(255, 0, 0), (0, 0, 255)}  # no blends
    assert imaging.fit(small, 2, 2) is small


@pytest.mark.parametrize(("fmt", "pil"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_encode_formats(fmt: str, pil: str) -> None:
    data = imaging.encode(Image.new("RGBA", (16, 16), (1, 2, 3, 255)), fmt, 80)
    assert Image.open(io.BytesIO(data)).format == pil


def test_compression_sets_quality() -> None:
    noisy = Image.effect_noise((128, 128), 60).convert("RGB")
    assert len(imaging.encode(noisy, "jpeg", 10)) < len(imaging.encode(noisy, "jpeg", 95))
