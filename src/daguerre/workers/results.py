"""A finished render's images: encoded as the client asked, stored, and recorded.

Activities run at least once, so everything here is keyed by job id and image index
and written as an upsert: storing the same results twice gives the same rows.
"""

from __future__ import annotations

from daguerre import blob_layout
from daguerre.domain import ImageRecord, JobSpec, OutputFormat
from daguerre.models.base import RenderResult
from daguerre.store.blobs import BlobStore
from daguerre.workers import imaging
from daguerre.workers.edits import EditInputs
from daguerre.workers.provenance import Provenance


def image_id(job_id: str, index: int) -> str:
    return f"img-{job_id}-{index}"


def store_images(
    blobs: BlobStore,
    job_id: str,
    account_id: str,
    spec: JobSpec,
    results: list[RenderResult],
    edit: EditInputs,
    provenance: Provenance | None = None,
) -> list[ImageRecord]:
    """Encode, sign (``provenance``: its content credentials) and store each image, and
    the model's own encoding of it for later edits; blocking: call it from a thread."""
    fmt = OutputFormat(spec.output_format)
    images = []
    for index, result in enumerate(results):
        picture = imaging.finish(
            result.image, spec.width, spec.height, spec.background, edit.source, edit.mask
        )
        blob_key = blob_layout.image_key(job_id, index, fmt.value)
        data = imaging.encode(picture, fmt, spec.output_compression)
        if provenance is not None:
            data = provenance.sign(data, fmt.media_type, spec.model, edit=spec.is_edit)
        blobs.put(blob_key, data)
        encoding_key = None
        if result.encoding is not None:
            encoding_key = blob_layout.encoding_key(job_id, index)
            blobs.put(encoding_key, result.encoding)
        images.append(
            ImageRecord(
                id=image_id(job_id, index),
                job_id=job_id,
                index=index,
                account_id=account_id,
                blob_key=blob_key,
                encoding_key=encoding_key,
                media_type=fmt.media_type,
                width=picture.width,
                height=picture.height,
                revised_prompt=result.revised_prompt,
            )
        )
    return images
