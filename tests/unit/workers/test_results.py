"""Storing a finished render's images: the records carry what the model said about them."""

from __future__ import annotations

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
