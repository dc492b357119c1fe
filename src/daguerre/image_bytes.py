"""Pictures as the bytes a client or a worker stores: one encoder for every part.

The gateway stores uploads as PNG (one lossless format for the worker to read), and the
workers store renders in the format the client asked for; both go through ``encode``, so
a mode one format cannot hold is converted the same way everywhere. PIL only: the
gateway imports this, and no model runtime comes with it.
"""

from __future__ import annotations

import io

from PIL import Image

from daguerre.domain import OutputFormat

_PIL_FORMAT = {OutputFormat.PNG: "PNG", OutputFormat.JPEG: "JPEG", OutputFormat.WEBP: "WEBP"}
# Pixel modes a PNG can hold; others (a CMYK or YCbCr JPEG, LAB, HSV) are converted.
PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


def encode(image: Image.Image, fmt: str, compression: int | None = None) -> bytes:
    """Encode as PNG, JPEG or WebP. ``compression`` (0-100) follows OpenAI's
    ``output_compression``: it sets JPEG/WebP quality (100 unless given, OpenAI's
    default), and PNG ignores it."""
    output = OutputFormat(fmt)
    if output is OutputFormat.PNG and image.mode not in PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if output is not OutputFormat.PNG and image.mode == "P":
        image = image.convert("RGB")
    if output is OutputFormat.JPEG and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    options: dict[str, int] = {}
    if output is not OutputFormat.PNG:
        options["quality"] = max(1, min(100, compression if compression is not None else 100))
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMAT[output], **options)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    return encode(image, OutputFormat.PNG)
