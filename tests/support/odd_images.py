"""Uploads that are not the plain PNG an edit expects, for the bad-input corpus.

``REFUSED``: never an image the service should take (another format, damaged, empty,
a bomb). ``TOLERATED``: real PNG/JPEG/WebP files of an unusual kind, which the service
may take (converting them) or refuse, but must answer either way without a 5xx.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

from tests.support.engine import png_bytes


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _frames(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), (i * 60, 0, 0)) for i in range(3)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def header_bomb(side: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes whose header claims ``side`` x ``side`` pixels:
    decoding it would allocate ``side``² bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * 64  # a little real data; the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(row * 16, 9))
        + _chunk(b"IEND", b"")
    )


def real_bomb() -> bytes:
    """A complete, valid PNG just over the default pixel limit (4096²), ~20 KB."""
    return _save(Image.new("L", (4100, 4100)), "PNG", optimize=True)


REFUSED: dict[str, Callable[[], bytes]] = {
    "gif": lambda: _save(Image.new("RGB", (32, 32)), "GIF"),
    "animated-gif": lambda: _frames("GIF"),
    "tiff": lambda: _save(Image.new("RGB", (32, 32)), "TIFF"),
    "bmp": lambda: _save(Image.new("RGB", (32, 32)), "BMP"),
    "ico": lambda: _save(Image.new("RGB", (32, 32)), "ICO"),
    "truncated-png": lambda: png_bytes(64)[:60],
    "png-signature-only": lambda: b"\x89PNG\r\n\x1a\n",
    "text-named-png": lambda: b"this is not an image, whatever its name says\n",
    "html-named-png": lambda: b"<html><script>alert(1)</script></html>",
    "zero-bytes": lambda: b"",
    "header-bomb": header_bomb,
    "real-bomb": real_bomb,
    "svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"/>',
}

TOLERATED: dict[str, Callable[[], bytes]] = {
    "png-1x1": lambda: png_bytes(1),
    "png-16-bit": lambda: _save(Image.new("I;16", (32, 32)), "PNG"),
    "png-palette": lambda: _save(Image.new("P", (32, 32)), "PNG"),
    "png-grey-alpha": lambda: _save(Image.new("LA", (32, 32)), "PNG"),
    "png-animated": lambda: _frames("PNG"),
    "png-wide": lambda: _save(Image.new("RGB", (4000, 1)), "PNG"),
    "jpeg-cmyk": lambda: _save(Image.new("CMYK", (32, 32), (0, 128, 0, 0)), "JPEG"),
    "jpeg-greyscale": lambda: _save(Image.new("L", (32, 32)), "JPEG"),
    "jpeg-progressive": lambda: _save(Image.new("RGB", (32, 32)), "JPEG", progressive=True),
    "webp-animated": lambda: _frames("WEBP"),
    "webp-lossless-alpha": lambda: _save(Image.new("RGBA", (32, 32)), "WEBP", lossless=True),
}
