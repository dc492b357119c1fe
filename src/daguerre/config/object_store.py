"""The settings section for blobs in an S3-compatible object store instead of a folder.

Its own section (a mixin of `Settings` like the others, so the names stay flat:
``DAGUERRE_BLOB_URL``, ``settings.blob_url``), because a worker on another host needs the
same blobs as the gateway, and a folder of its own is not that.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

BLOB_URL_SCHEMES = ("s3",)


def parse_blob_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of ``s3://bucket/optional/prefix``; the prefix has no slash at
    either end ("" for none). Raises ValueError, naming the setting, for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in BLOB_URL_SCHEMES:
        raise ValueError(
            f"blob_url {url!r}: only s3://bucket[/prefix] is supported (any S3-compatible "
            "store: set s3_endpoint_url for MinIO, R2, GCS and the like); leave it unset for "
            "the local folder"
        )
    if not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"blob_url {url!r}: expected s3://bucket[/prefix]")
    return parts.netloc, parts.path.strip("/")


class ObjectStoreSection(BaseModel):
    """Object store: blobs in an S3-compatible bucket, shared by every host."""

    blob_url: str | None = Field(
        default=None,
        description="`s3://bucket/optional/prefix`: images, uploads, previews and checkpoints "
        "in that bucket, under that prefix (needed once workers run on other hosts). None: "
        "the local folder (`blob_dir`).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 API's URL for a store other than AWS (MinIO, SeaweedFS, R2, GCS in "
        "S3 mode), e.g. `http://minio:9000`; path-style addressing is used then. None: AWS.",
    )
    s3_region: str | None = Field(
        default=None, description="The bucket's region. None: boto3's usual lookup (AWS_REGION)."
    )
    s3_access_key_id: str | None = Field(
        default=None,
        description="Access key id. None (with the secret None too): boto3's usual chain "
        "(AWS_* variables, shared files, instance or pod roles).",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="The secret of `s3_access_key_id`."
    )
    s3_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Connect and read timeout of one request to the object store.",
    )
    s3_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts per request (with backoff) before an outage is reported; a "
        "request thus gives up within about attempts x (2 x timeout + backoff).",
    )

    @field_validator("blob_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            parse_blob_url(value)
        return value
