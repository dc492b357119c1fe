"""Turning model output into the bytes a client asked for."""

from __future__ import annotations

import numpy as np
from PIL import Image

# The one encoder, shared with the gateway: imaging.encode and imaging.png are its names here.
from daguerre.image_bytes import encode, png

__all__ = ["encode", "fit", "keep_outside_mask", "palette", "png"]


# Flat pictures at most this many pixels are turned into palette images before they are
# scaled up: a palette PNG of a 512x512 flat picture is written in a quarter of the time
# of an RGB one (1.4 against 5.7 ms, measured here) and is smaller. Photos (more than
# 256 colours) are found out within their first few hundred pixels and stay RGB.
PALETTE_MAX_PIXELS = 256 * 256


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to the requested size. Nearest neighbour keeps flat colours and hard edges
    exactly as the model drew them (the builtin model renders small and flat)."""
    if image.size == (width, height):
        return image
    if image.mode == "RGB" and image.width * image.height <= PALETTE_MAX_PIXELS:
        image = palette(image)
    return image.resize((width, height), Image.Resampling.NEAREST)


def palette(image: Image.Image) -> Image.Image:
    """The same picture as a palette image when it has at most 256 colours (exactly the
    same colours: no quantising); otherwise the image itself."""
    colours = image.getcolors(256)
    if colours is None:
        return image
    table = np.array([colour for _, colour in colours], dtype=np.uint32)
    keys = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
    order = np.argsort(keys)
    rgb = np.asarray(image, dtype=np.uint32)
    pixels = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    indices = order[np.searchsorted(keys[order], pixels)].astype(np.uint8)
    out = Image.fromarray(indices, "P")
    out.putpalette(table.astype(np.uint8).ravel().tolist())
    return out


def keep_outside_mask(image: Image.Image, source: Image.Image, mask: Image.Image) -> Image.Image:
    """The source's pixels wherever the mask is opaque (OpenAI's meaning: only
    transparent pixels may change), at ``image``'s size. The built-in model does this
    itself; doing it again here makes it a guarantee of the service for every backend."""
    size = image.size
    keep = mask.convert("RGBA").getchannel("A").point(lambda a: 255 if a else 0)
    keep = keep.resize(size, Image.Resampling.NEAREST)
    original = source.convert("RGB").resize(size, Image.Resampling.NEAREST)
    return Image.composite(original, image.convert("RGB"), keep)
