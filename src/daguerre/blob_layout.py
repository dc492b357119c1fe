"""Every blob key the service writes, and the prefixes that clean them up: one place, so
that a reader (or an object-store lifecycle rule) sees the whole layout at once.

    images/<job>/<index>.<format>      a finished image, at the requested size and format
    images/<job>/<index>.encoding      the model's own encoding of it (fast later edits)
    uploads/<job>/source.png|mask.png  an edit's uploads, stored as PNG
    previews/<job>/latest.png          the latest preview (overwritten each step)
    previews/<job>/partial-<i>.<fmt>   the partial images a stream asked for
    checkpoints/<job>/<step>.state     a render's resumable state
    files/<account>/<file>             a file uploaded through /v1/files

``<job>`` is the job's row id (for a client-chosen id, the derived one), so one
account's keys never collide with another's.
"""

from __future__ import annotations


def image_key(job_id: str, index: int, output_format: str) -> str:
    return f"images/{job_id}/{index}.{output_format}"


def encoding_key(job_id: str, index: int) -> str:
    return f"images/{job_id}/{index}.encoding"


def upload_keys(job_id: str) -> tuple[str, str]:
    """(source, mask) of an edit."""
    return f"uploads/{job_id}/source.png", f"uploads/{job_id}/mask.png"


def upload_prefix(job_id: str) -> str:
    return f"uploads/{job_id}"


def preview_key(job_id: str) -> str:
    # One key per job, overwritten each step: watchers only ever want the latest.
    return f"previews/{job_id}/latest.png"


def partial_key(job_id: str, index: int, output_format: str) -> str:
    """Partial image ``index`` of a job, already at the requested size and format."""
    return f"previews/{job_id}/partial-{index}.{output_format}"


def checkpoint_key(job_id: str, step: int) -> str:
    return f"checkpoints/{job_id}/{step:06d}.state"


def checkpoint_prefix(job_id: str) -> str:
    return f"checkpoints/{job_id}"


def file_key(account_id: str, file_id: str) -> str:
    return f"files/{account_id}/{file_id}"


def job_prefixes(job_id: str) -> tuple[str, ...]:
    """Every prefix that holds one job's blobs: what its expiry deletes."""
    return (
        f"images/{job_id}",
        upload_prefix(job_id),
        f"previews/{job_id}",
        checkpoint_prefix(job_id),
    )
