"""Checking uploaded images (POST /v1/images/edits) with Pillow alone.

Every problem is a 400 that says what is wrong with which upload. The order matters
for safety: the format and the dimensions come from the header (``Image.open`` is
lazy), and only an image within the pixel limit is decoded, so a small file that
claims 100,000 x 100,000 pixels (a decompression bomb) never allocates them.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from daguerre.gateway.api.errors import APIError, bad_request

# What OpenAI accepts for edits, as Pillow names the formats.
FORMATS = ("PNG", "JPEG", "WEBP")


@dataclass(frozen=True)
class Upload:
    """One uploaded image, decoded and checked."""

    image: Image.Image
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def decode(data: bytes, param: str, max_pixels: int) -> Upload:
    """The image in ``data``, or a 400 naming ``param``."""
    if not data:
        raise bad_request(f"Invalid value for '{param}': the file is empty.", param=param)
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns first and raises past twice its limit; both are a
        # refusal here (our own, lower, limit is checked below before decoding).
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise bad_request(
                f"Invalid value for '{param}': not a PNG, JPEG or WebP image.",
                param=param,
                code="invalid_image_format",
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(param, max_pixels) from None
        except (OSError, SyntaxError, ValueError, struct.error) as err:
            raise _damaged(param, "image", err) from None
        width, height = image.size
        if width < 1 or height < 1 or width * height > max_pixels:
            raise _too_many_pixels(param, max_pixels, width, height)
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(param, max_pixels) from None
        except (OSError, SyntaxError, ValueError, struct.error) as err:
            raise _damaged(param, image.format or "image", err) from None
    return Upload(image, image.format or "")


def _damaged(param: str, what: str, err: Exception) -> APIError:
    return bad_request(
        f"Invalid value for '{param}': the {what} file is damaged or truncated ({err}).",
        param=param,
        code="invalid_image",
    )


def _too_many_pixels(param: str, limit: int, width: int = 0, height: int = 0) -> APIError:
    size = f" ({width}x{height})" if width and height else ""
    return bad_request(
        f"Invalid value for '{param}': the image has too many pixels{size}; "
        f"the limit is {limit} pixels.",
        param=param,
        code="image_too_large",
    )


def check_mask(mask: Upload, source: Upload) -> Image.Image:
    """The mask as RGBA, if it fits the image. OpenAI's meaning: alpha 0 may change,
    so a mask without an alpha channel would protect everything; say so."""
    if mask.size != source.size:
        mw, mh = mask.size
        sw, sh = source.size
        raise bad_request(
            f"Invalid value for 'mask': it is {mw}x{mh} but the image is {sw}x{sh}; "
            "they must be the same size.",
            param="mask",
            code="mask_size_mismatch",
        )
    if "A" not in mask.image.getbands() and "transparency" not in mask.image.info:
        raise bad_request(
            "Invalid value for 'mask': it has no alpha channel. Transparent pixels "
            "(alpha 0) mark the area to edit.",
            param="mask",
        )
    return mask.image.convert("RGBA")
