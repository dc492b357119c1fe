"""Blobs in an S3-compatible object store (AWS S3, MinIO, SeaweedFS, R2, GCS in S3 mode):
the store every host shares once workers run on more than one machine.

Same protocol as the local folder (blobs.py), with boto3's synchronous client: callers
already run blob calls off the event loop (store/threads.py). Every request has bounded
connect and read timeouts and a few retries ("standard" mode, with backoff), so an outage
ends in bounded time with a ``BlobStoreUnavailable`` that names the endpoint, the bucket
and what to fix, never a raw botocore error. A missing blob is a KeyError, as for a folder.

An object write is atomic by nature: a reader sees the old blob, the new one, or none.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from daguerre.store.blobs import BlobStoreUnavailable, check_key

T = TypeVar("T")

# One client serves every blob thread (boto3 clients are thread-safe): as many pooled
# connections as store/threads.py runs blocking calls at once.
POOL_CONNECTIONS = 32
# S3's own limits: keys per listing page, and per DeleteObjects request.
LIST_PAGE = 1000
DELETE_BATCH = 1000
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken"}
)
# Stores without multi-object delete (GCS's S3 mode) answer these; we delete one by one.
_NO_BATCH_DELETE = frozenset({"NotImplemented", "MethodNotAllowed", "501", "405"})


@dataclass(frozen=True)
class S3Location:
    """Where the blobs live and how to reach them (see config/object_store.py)."""

    bucket: str
    prefix: str = ""  # no slash at either end; "" for the bucket's root
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    timeout_s: float = 5.0
    max_attempts: int = 3

    def describe(self) -> str:
        url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{url} at {self.endpoint_url or 'AWS S3'}"


def make_client(location: S3Location) -> Any:
    """A boto3 S3 client with bounded timeouts and retries."""
    config = Config(
        connect_timeout=location.timeout_s,
        read_timeout=location.timeout_s,
        retries={"mode": "standard", "total_max_attempts": location.max_attempts},
        max_pool_connections=POOL_CONNECTIONS,
        # Other stores rarely resolve a bucket as a host name: path-style there.
        s3={"addressing_style": "path" if location.endpoint_url else "auto"},
        # Checksums only where S3 requires them: several S3-compatible stores reject the
        # CRC headers that newer boto3 sends by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=location.endpoint_url,
        region_name=location.region,
        aws_access_key_id=location.access_key_id,
        aws_secret_access_key=location.secret_access_key,
        config=config,
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    """Blobs as objects ``<prefix>/<key>`` in one bucket."""

    def __init__(self, location: S3Location, client: Any = None) -> None:
        self.location = location
        self._client = client if client is not None else make_client(location)
        self._base = f"{location.prefix}/" if location.prefix else ""

    # --- keys ---------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        return self._base + check_key(key)

    def _key(self, name: str) -> str:
        return name[len(self._base) :]

    # --- errors -------------------------------------------------------------------------
    def _unavailable(self, action: str, error: Exception) -> BlobStoreUnavailable:
        where = self.location.describe()
        if isinstance(error, NoCredentialsError):
            fix = "no credentials: set DAGUERRE_S3_ACCESS_KEY_ID and _SECRET_ACCESS_KEY"
        elif isinstance(error, ClientError) and _code(error) == "NoSuchBucket":
            fix = "the bucket does not exist: create it, or fix DAGUERRE_BLOB_URL"
        elif isinstance(error, ClientError) and _code(error) in _CREDENTIALS:
            fix = "access refused: check DAGUERRE_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY"
        else:
            fix = "unreachable or failing: check that it is up and DAGUERRE_S3_ENDPOINT_URL"
        detail = f"{type(error).__name__}: {error}"
        return BlobStoreUnavailable(f"blob store {where}: {action} failed, {fix} ({detail})")

    def _call(self, action: str, call: Callable[[], T], missing: bool = False) -> T:
        """``call()``, every failure turned into BlobStoreUnavailable, except (with
        ``missing``) the ClientError that says the object is not there: the caller's."""
        try:
            return call()
        except ClientError as error:
            if missing and _code(error) in _MISSING:
                raise
            raise self._unavailable(action, error) from None
        except BotoCoreError as error:  # connection refused, timeouts, no credentials
            raise self._unavailable(action, error) from None

    # --- the protocol -------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._call(
            f"put {key}",
            lambda: self._client.put_object(
                Bucket=self.location.bucket, Key=name, Body=data, ContentType=kind
            ),
        )

    def get(self, key: str) -> bytes:
        name = self._name(key)

        def read() -> bytes:
            response = self._client.get_object(Bucket=self.location.bucket, Key=name)
            return bytes(response["Body"].read())  # a read that dies mid-way fails too

        try:
            return self._call(f"get {key}", read, missing=True)
        except ClientError:  # only "missing" gets past _call
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._call(
                f"look up {key}",
                lambda: self._client.head_object(Bucket=self.location.bucket, Key=name),
                missing=True,
            )
        except ClientError:
            return False
        return True

    def _names(self, prefix: str, delimiter: str | None) -> Iterator[list[str]]:
        """Pages of the object names under ``prefix/``."""
        options = {"Bucket": self.location.bucket, "Prefix": self._name(prefix) + "/"}
        if delimiter:
            options["Delimiter"] = delimiter
        pages = self._client.get_paginator("list_objects_v2").paginate(
            **options, PaginationConfig={"PageSize": LIST_PAGE}
        )
        iterator = iter(pages)
        while True:
            page = self._call(f"list {prefix}/", lambda: next(iterator, None))
            if page is None:
                return
            yield [item["Key"] for item in page.get("Contents", [])]

    def keys(self, prefix: str) -> list[str]:
        # The delimiter leaves out deeper "folders", as the local store does; so is a
        # folder marker ("prefix/", which some stores and consoles make): not a blob.
        names = (n for page in self._names(prefix, "/") for n in page if not n.endswith("/"))
        return sorted(self._key(name) for name in names)

    def delete(self, key: str) -> None:
        name = self._name(key)  # deleting a missing object succeeds in S3
        self._call(
            f"delete {key}",
            lambda: self._client.delete_object(Bucket=self.location.bucket, Key=name),
        )

    def delete_prefix(self, prefix: str) -> None:
        # Every page is deleted before the next is listed: a listing stays valid past
        # the deletion of what it already returned.
        for names in self._names(prefix, None):
            for start in range(0, len(names), DELETE_BATCH):
                self._delete_batch(prefix, names[start : start + DELETE_BATCH])

    def _delete_batch(self, prefix: str, names: list[str]) -> None:
        objects = {"Objects": [{"Key": n} for n in names], "Quiet": True}
        try:
            response = self._client.delete_objects(Bucket=self.location.bucket, Delete=objects)
        except ClientError as error:
            if _code(error) not in _NO_BATCH_DELETE:
                raise self._unavailable(f"delete {prefix}/", error) from None
            for name in names:
                self.delete(self._key(name))
            return
        except BotoCoreError as error:
            raise self._unavailable(f"delete {prefix}/", error) from None
        failed = response.get("Errors") or []
        if failed:
            first = failed[0]
            raise BlobStoreUnavailable(
                f"blob store {self.location.describe()}: delete {prefix}/ failed for "
                f"{len(failed)} objects, e.g. {first.get('Key')}: {first.get('Code')} "
                f"{first.get('Message')}"
            )

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A GET URL signed with the store's credentials (made locally: no request).
        Reachable by a client only if the store is; see docs/deploy.md."""
        name = self._name(key)
        params = {"Bucket": self.location.bucket, "Key": name}
        return str(
            self._call(
                f"sign {key}",
                lambda: self._client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=expires_s
                ),
            )
        )
