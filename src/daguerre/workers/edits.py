"""Reading an edit's inputs (source image, mask, the model's own encoding) from the
blob store, where the gateway put them: images never travel in Temporal payloads."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image
from temporalio.exceptions import ApplicationError

from daguerre.domain import JobSpec
from daguerre.store.blobs import BlobStore


@dataclass(frozen=True)
class EditInputs:
    source: Image.Image | None = None
    mask: Image.Image | None = None
    encoding: bytes | None = None


def _blob(blobs: BlobStore, key: str, what: str) -> bytes:
    try:
        return blobs.get(key)
    except KeyError:
        # Not the client's fault (the gateway stored it before the job was accepted), and
        # worth a retry: most often this worker cannot see the gateway's blob store (a
        # folder per host), and another worker may. After the retries the job fails
        # with this reason.
        raise ApplicationError(
            f"the {what} of this edit is not in this worker's blob store ({key}); the "
            "gateways and the workers must share one blob store (blob_url)",
            type="BlobMissing",
        ) from None


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def load_edit_inputs(blobs: BlobStore, spec: JobSpec) -> EditInputs:
    if not spec.is_edit:
        return EditInputs()
    source = _image(_blob(blobs, spec.source_key, "source image")) if spec.source_key else None
    mask = _image(_blob(blobs, spec.mask_key, "mask")).convert("RGBA") if spec.mask_key else None
    encoding = None
    if spec.source_encoding_key:
        encoding = _blob(blobs, spec.source_encoding_key, "source encoding")
    return EditInputs(source, mask, encoding)
