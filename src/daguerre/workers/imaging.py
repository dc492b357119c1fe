"""Turning model output into the bytes a client asked for."""

from __future__ import annotations

import io

from PIL import Image

from daguerre.domain import OutputFormat

_PIL_FORMAT = {OutputFormat.PNG: "PNG", OutputFormat.JPEG: "JPEG", OutputFormat.WEBP: "WEBP"}


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to the requested size. Nearest neighbour keeps flat colours and hard edges
    exactly as the model drew them (the builtin model renders small and flat)."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.NEAREST)


def encode(image: Image.Image, fmt: str, compression: int | None = None) -> bytes:
    """Encode as PNG, JPEG or WebP. ``compression`` (0-100) follows OpenAI's
    ``output_compression``: it sets JPEG/WebP quality, and PNG ignores it."""
    output = OutputFormat(fmt)
    if output is OutputFormat.JPEG and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    options: dict[str, int] = {}
    if output is not OutputFormat.PNG:
        options["quality"] = max(1, min(100, compression if compression is not None else 90))
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMAT[output], **options)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    return encode(image, OutputFormat.PNG)


def keep_outside_mask(image: Image.Image, source: Image.Image, mask: Image.Image) -> Image.Image:
    """The source's pixels wherever the mask is opaque (OpenAI's meaning: only
    transparent pixels may change), at ``image``'s size. The built-in model does this
    itself; doing it again here makes it a guarantee of the service for every backend."""
    size = image.size
    keep = mask.convert("RGBA").getchannel("A").point(lambda a: 255 if a else 0)
    keep = keep.resize(size, Image.Resampling.NEAREST)
    original = source.convert("RGB").resize(size, Image.Resampling.NEAREST)
    return Image.composite(original, image.convert("RGB"), keep)
