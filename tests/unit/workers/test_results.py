"""Storing a finished render's images: the records carry what the model said about them."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from PIL import Image

from daguerre.domain import JobSpec
from daguerre.models.base import RenderResult
from daguerre.store.blobs import LocalBlobStore
from daguerre.workers.edits import EditInputs
from daguerre.workers.results import store_images

SPEC = JobSpec(prompt="a red circle", model="builtin", n=2, width=64, height=64)


def test_revised_prompt_goes_into_each_image_record(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    picture = Image.new("RGB", (32, 32), (255, 255, 255))
    read = "a large red circle in the center, on a white background"
    results = [
        RenderResult(picture, encoding=b"enc", revised_prompt=read),
        RenderResult(picture),  # a model with no reading of its own
    ]
    images = store_images(blobs, "j1", "acct", SPEC, results, EditInputs())
    assert [i.revised_prompt for i in images] == [read, None]
    assert [(i.index, i.width, i.height) for i in images] == [(0, 64, 64), (1, 64, 64)]
    assert images[0].encoding_key is not None and images[1].encoding_key is None
    assert blobs.get(images[0].encoding_key) == b"enc"


def test_a_transparent_frame_of_another_shape_is_stored_as_asked(tmp_path: Path) -> None:
    """A square model asked for 1536x1024 with a transparent background: the scene is
    centred, and its background (and the frame around it) has alpha 0."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    picture = Image.new("RGB", (64, 64), (128, 128, 128))
    picture.paste((30, 70, 230), (16, 16, 48, 48))
    spec = replace(SPEC, n=1, width=1536, height=1024, background="transparent")
    (image,) = store_images(blobs, "j2", "acct", spec, [RenderResult(picture)], EditInputs())
    assert (image.width, image.height) == (1536, 1024)
    stored = Image.open(io.BytesIO(blobs.get(image.blob_key)))
    assert stored.mode == "RGBA" and stored.size == (1536, 1024)
    assert stored.getpixel((10, 10))[3] == 0  # the frame
    assert stored.getpixel((768, 512)) == (30, 70, 230, 255)  # the object, centred
