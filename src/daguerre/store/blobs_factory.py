"""``open_blobs``: the blob store the settings name, for every process that reads or writes
blobs (the gateway through open_store, a worker's engine for its swapped-out renders).

The local folder is the default and needs nothing installed or running; ``blob_url``
(``s3://bucket/prefix``) selects the object store, whose client is imported only then.
"""

from __future__ import annotations

from daguerre.config import Settings
from daguerre.config.object_store import parse_blob_url
from daguerre.store.blobs import BlobStore, LocalBlobStore


def open_blobs(settings: Settings) -> BlobStore:
    """The blob store of these settings: the object store if ``blob_url`` is set, else
    the folder ``blobs_path``. Connects to nothing yet (the first call does)."""
    if settings.blob_url is None:
        return LocalBlobStore(settings.blobs_path)
    from daguerre.store.object_blobs import S3BlobStore, S3Location

    bucket, prefix = parse_blob_url(settings.blob_url)
    secret = settings.s3_secret_access_key
    return S3BlobStore(
        S3Location(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            timeout_s=settings.s3_timeout_s,
            max_attempts=settings.s3_max_attempts,
        )
    )
