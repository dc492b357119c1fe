"""Reading a finished job's images from the blob store, and saying why one is not there.

A finished job names its images, but the blob store may no longer hold one: the
retention sweep deleted it (the job is marked expired), or it was lost, most often
because the workers store images where this gateway cannot read them (a blob folder per
host instead of one shared store: set ``blob_url``). Either way the answer is a 410 that
says which, never a 500 and never an empty image; a loss is also logged and counted
(``daguerre_blobs_missing_total``) for the operator, who is the one who can fix it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from daguerre.domain import ImageRecord, JobRecord
from daguerre.gateway.api.errors import APIError
from daguerre.gateway.context import Services
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)


async def read_image(services: Services, image: ImageRecord, job: JobRecord | None = None) -> bytes:
    """The image's bytes; an APIError (410) that says why when the store has none."""
    try:
        return await run_blocking(services.store.blobs.get, image.blob_key)
    except KeyError:
        pass
    if job is None:
        job = await run_blocking(services.store.jobs.get, image.job_id)
    raise missing_image(services, image, job)


def missing_image(services: Services, image: ImageRecord, job: JobRecord | None) -> APIError:
    """The error for an image the store does not hold (see the module's docstring)."""
    job_id = job.public_id if job is not None else image.job_id
    if job is not None and job.expired_at is not None:
        when = datetime.fromtimestamp(job.expired_at, UTC).strftime("%Y-%m-%d")
        return APIError(
            410,
            f"The images of job '{job_id}' were deleted on {when}, at the end of the time "
            "your plan keeps images.",
            code="image_expired",
        )
    services.metrics.missing_blobs.inc()
    log.error(
        "image %s of job %s is not in the blob store (%s): do the gateways and the workers "
        "share one blob store (blob_url)?",
        image.id,
        image.job_id,
        image.blob_key,
    )
    return APIError(
        410,
        f"The image '{image.id}' of job '{job_id}' is no longer stored.",
        code="image_missing",
    )


async def file_bytes(services: Services, account_id: str, file_id: str) -> bytes | None:
    """One of the account's files (/v1/files), as an edit names it by ``file_id``; None
    when it has no such file (another account's reads as missing too)."""
    store = services.store
    stored = await run_blocking(store.files.get, account_id, file_id)
    if stored is None:
        return None
    try:
        return await run_blocking(store.blobs.get, stored.blob_key)
    except KeyError:
        return None
