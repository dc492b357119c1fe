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


def scene(size: int = 64) -> Image.Image:
    """A flat picture: a white background, a red square touching no edge."""
    picture = Image.new("RGB", (size, size), (255, 255, 255))
    picture.paste((220, 30, 30), (size // 4, size // 4, size * 3 // 4, size * 3 // 4))
    return picture


@pytest.mark.parametrize(("width", "height"), [(1536, 1024), (1024, 1536), (192, 64)])
def test_a_square_picture_is_centred_in_a_frame_of_another_shape(width: int, height: int) -> None:
    framed = imaging.fit(scene(), width, height)
    assert framed.size == (width, height)
    rgb = np.asarray(framed.convert("RGB"))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    # The square scene, scaled to the frame's shorter side, sits in the middle ...
    inner = rgb[top : top + side, left : left + side]
    assert (inner == np.asarray(imaging.fit(scene(), side, side).convert("RGB"))).all()
    # ... and the rest is its background, not black bars and not a stretched scene.
    outside = np.ones(rgb.shape[:2], bool)
    outside[top : top + side, left : left + side] = False
    assert (rgb[outside] == (255, 255, 255)).all()


def test_the_border_colour_is_the_background() -> None:
    assert imaging.border_colour(scene()) == (255, 255, 255)
    grey = Image.new("RGB", (8, 8), (128, 128, 128))
    grey.paste((30, 70, 230), (0, 0, 3, 3))  # an object in a corner does not win
    assert imaging.border_colour(grey) == (128, 128, 128)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_keys_out_exactly_the_background(fmt: str) -> None:
    picture = imaging.finish(scene(), 256, 256, "transparent")
    decoded = Image.open(io.BytesIO(imaging.encode(picture, fmt)))
    assert decoded.mode == "RGBA"
    rgba = np.asarray(decoded)
    alpha = rgba[..., 3]
    assert alpha[0, 0] == 0 and alpha[128, 128] == 255  # background gone, object kept
    expected = (np.asarray(imaging.fit(scene(), 256, 256).convert("RGB")) != 255).any(-1)
    assert ((alpha > 0) == expected).mean() > 0.99  # WebP at 100 still rounds an edge
    assert imaging.finish(scene(), 64, 64, "opaque").mode == "RGB"


def test_jpeg_and_webp_default_to_full_quality() -> None:
    """OpenAI's default output_compression is 100."""
    picture = scene(128)
    for fmt in ("jpeg", "webp"):
        assert imaging.encode(picture, fmt) == imaging.encode(picture, fmt, 100)
        assert imaging.encode(picture, fmt) != imaging.encode(picture, fmt, 90)
