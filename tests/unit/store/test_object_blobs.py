"""The object-store blob backend against a real S3-compatible server process
(tests/support/s3_server.py: SeaweedFS, or moto's server), started once per module.

Each test writes under a prefix of its own, so tests share the server and not their keys.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from daguerre.config import Settings
from daguerre.store import object_blobs as object_blobs_module
from daguerre.store import open_store
from daguerre.store.blobs import BlobStoreUnavailable, LocalBlobStore
from daguerre.store.blobs_factory import open_blobs
from daguerre.store.object_blobs import S3BlobStore
from daguerre.workers.checkpoints import Checkpoints
from tests.support.s3_server import S3Server, s3_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as started:
        yield started


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def s3_settings(server: S3Server, tmp_path: Path, prefix: str = "", **more: object) -> Settings:
    values = {**server.settings_values(prefix), **more}
    return Settings(data_dir=tmp_path, **values)


@pytest.fixture
def blobs(server: S3Server, tmp_path: Path, prefix: str) -> S3BlobStore:
    store = open_blobs(s3_settings(server, tmp_path, prefix))
    assert isinstance(store, S3BlobStore)
    return store


# --- choosing the backend ------------------------------------------------------------------
def test_the_local_folder_stays_the_default(tmp_path: Path) -> None:
    store = open_blobs(Settings(data_dir=tmp_path))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"
    store.put("images/j/0.png", b"png")
    assert store.presigned_url("images/j/0.png", 60) is None  # the gateway serves a folder


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("gs://bucket", "only s3://bucket"),
        ("file:///srv/blobs", "only s3://bucket"),
        ("s3://", "expected s3://bucket"),
        ("s3://bucket/p?versioned=1", "expected s3://bucket"),
    ],
)
def test_blob_url_must_name_an_s3_bucket(tmp_path: Path, url: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Settings(data_dir=tmp_path, blob_url=url)


def test_blob_url_selects_the_object_store_with_its_prefix(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_url="s3://pictures/prod/eu/", s3_region="eu-west-1")
    store = open_blobs(settings)
    assert isinstance(store, S3BlobStore)
    assert (store.location.bucket, store.location.prefix) == ("pictures", "prod/eu")
    assert store.location.describe() == "s3://pictures/prod/eu at AWS S3"


def test_open_store_uses_the_object_store(server: S3Server, tmp_path: Path, prefix: str) -> None:
    store = open_store(s3_settings(server, tmp_path, prefix))
    try:
        assert isinstance(store.blobs, S3BlobStore)
        store.blobs.put("images/j/0.png", b"through open_store")
        assert store.blobs.get("images/j/0.png") == b"through open_store"
        assert not (tmp_path / "blobs").exists()  # nothing went to the folder
    finally:
        store.close()


# --- the protocol ----------------------------------------------------------------------------
def test_put_get_exists_overwrite_delete(blobs: S3BlobStore) -> None:
    assert not blobs.exists("images/j1/0.png")
    blobs.put("images/j1/0.png", b"one")
    blobs.put("images/j1/0.png", b"two")  # an overwrite replaces, it never appends
    assert blobs.get("images/j1/0.png") == b"two"
    assert blobs.exists("images/j1/0.png")
    blobs.delete("images/j1/0.png")
    assert not blobs.exists("images/j1/0.png")


def test_missing_blobs_are_key_errors_and_missing_deletes_are_fine(blobs: S3BlobStore) -> None:
    with pytest.raises(KeyError, match=r"images/none/0\.png"):
        blobs.get("images/none/0.png")
    assert not blobs.exists("images/none/0.png")
    blobs.delete("images/none/0.png")
    blobs.delete_prefix("images/none")
    assert blobs.keys("images/none") == []


def test_keys_lists_only_the_blobs_directly_under_the_prefix(blobs: S3BlobStore) -> None:
    for key in ["c/j/2.state", "c/j/10.state", "c/j/1.state", "c/j/deeper/3.state", "c/j10/4"]:
        blobs.put(key, key.encode())
    assert blobs.keys("c/j") == ["c/j/1.state", "c/j/10.state", "c/j/2.state"]


def test_delete_prefix_takes_every_page_and_nothing_beside(
    blobs: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pages and batches, so that 23 objects take several of each (the real limits,
    # 1000 per page and per DeleteObjects, work the same way).
    monkeypatch.setattr(object_blobs_module, "LIST_PAGE", 5)
    monkeypatch.setattr(object_blobs_module, "DELETE_BATCH", 3)
    names = [f"checkpoints/j1/{step:06d}.state" for step in range(20)]
    names += ["checkpoints/j1/sub/a", "checkpoints/j1/sub/b", "checkpoints/j1/sub/c/d"]
    for name in names:
        blobs.put(name, b"s")
    blobs.put("checkpoints/j10/000001.state", b"a neighbour")
    assert len(blobs.keys("checkpoints/j1")) == 20  # listed across 4 pages
    blobs.delete_prefix("checkpoints/j1")
    assert not any(blobs.exists(name) for name in names)
    assert blobs.keys("checkpoints/j10") == ["checkpoints/j10/000001.state"]


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/abs", "a//b", "", "a/./b", "sp ace"])
def test_keys_cannot_escape_the_prefix(blobs: S3BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.put(key, b"x")


def test_the_prefix_of_blob_url_holds_every_key(
    server: S3Server, tmp_path: Path, prefix: str
) -> None:
    store = open_blobs(s3_settings(server, tmp_path, f"{prefix}/tenant"))
    store.put("images/j/0.png", b"mine")
    raw = server.client().list_objects_v2(Bucket=server.bucket, Prefix=f"{prefix}/")
    assert [item["Key"] for item in raw["Contents"]] == [f"{prefix}/tenant/images/j/0.png"]
    other = open_blobs(s3_settings(server, tmp_path, f"{prefix}/other"))
    assert not other.exists("images/j/0.png")  # another prefix is another store
    root = open_blobs(s3_settings(server, tmp_path))
    assert root.keys(f"{prefix}/tenant/images/j") == [f"{prefix}/tenant/images/j/0.png"]


def test_a_presigned_url_downloads_the_blob_without_credentials(blobs: S3BlobStore) -> None:
    blobs.put("images/j/0.png", b"\x89PNG not really")
    url = blobs.presigned_url("images/j/0.png", 60)
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"\x89PNG not really"
    assert response.headers["content-type"] == "image/png"  # set at put, from the key
    assert httpx.get(url.split("?", 1)[0]).status_code == 403  # the signature is the key


# --- checkpoints across hosts ----------------------------------------------------------------
async def test_checkpoints_cross_hosts_through_the_object_store(
    server: S3Server, tmp_path: Path, prefix: str
) -> None:
    settings = s3_settings(server, tmp_path, prefix)
    first_host, second_host = Checkpoints(open_blobs(settings)), Checkpoints(open_blobs(settings))
    await first_host.save("job-1", 4, b"state at 4")
    await first_host.save("job-1", 12, b"state at 12")  # drops the one at 4
    await first_host.save("job-2", 3, b"another job")
    assert second_host.latest("job-1") == (12, b"state at 12")
    await second_host.clear("job-1")  # the retry finished: nothing of job-1 is left
    assert second_host.latest("job-1") is None
    assert first_host.latest("job-1") is None
    assert second_host.latest("job-2") == (3, b"another job")


# --- failures --------------------------------------------------------------------------------
def test_bad_credentials_say_so(server: S3Server, tmp_path: Path, prefix: str) -> None:
    if not server.checks_credentials:
        pytest.skip(f"the {server.kind} server accepts any credentials")
    store = open_blobs(s3_settings(server, tmp_path, prefix, s3_secret_access_key="wrong"))
    with pytest.raises(BlobStoreUnavailable, match="access refused") as raised:
        store.put("images/j/0.png", b"x")
    assert server.endpoint_url in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_missing_bucket_says_so(server: S3Server, tmp_path: Path) -> None:
    values = {**server.settings_values(), "blob_url": "s3://no-such-bucket/p"}
    store = open_blobs(Settings(data_dir=tmp_path, **values))
    for call in (lambda: store.get("images/j/0.png"), lambda: store.keys("images/j")):
        with pytest.raises(BlobStoreUnavailable, match="bucket does not exist") as raised:
            call()
        assert "s3://no-such-bucket/p" in str(raised.value)


def _pointed_at(tmp_path: Path, endpoint: str, **values: Any) -> Settings:
    """Settings whose blobs are in ``s3://bucket`` at ``endpoint`` (a fake server)."""
    return Settings(
        data_dir=tmp_path,
        blob_url="s3://bucket",
        s3_endpoint_url=endpoint,
        s3_access_key_id="k",
        s3_secret_access_key="s",
        **values,
    )


def test_a_store_that_never_answers_times_out(tmp_path: Path) -> None:
    # A listener that accepts connections (the kernel does, from its backlog) and never
    # answers: only the read timeout ends each attempt.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = _pointed_at(tmp_path, endpoint, s3_timeout_s=0.3, s3_max_attempts=2)
        started = time.monotonic()
        with pytest.raises(BlobStoreUnavailable, match="unreachable or failing") as raised:
            open_blobs(settings).get("images/j/0.png")
        # Bounded: 2 attempts of 0.3 s plus backoff, with a wide margin for a slow CI.
        assert time.monotonic() - started < 20
    assert endpoint in str(raised.value) and "Timeout" in str(raised.value)


class _Failing(http.server.BaseHTTPRequestHandler):
    """An S3 front whose back is down: every request is a 503, counted."""

    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = b"<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_server_errors_are_retried_then_reported(tmp_path: Path) -> None:
    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{front.server_address[1]}"
        settings = _pointed_at(tmp_path, endpoint, s3_max_attempts=3)
        with pytest.raises(BlobStoreUnavailable, match="ServiceUnavailable") as raised:
            open_blobs(settings).get("images/j/0.png")
    finally:
        front.shutdown()
        front.server_close()
    assert _Failing.hits == 3  # every attempt was made, then the error named the store
    assert f"s3://bucket at {endpoint}" in str(raised.value)


def test_an_outage_is_reported_within_bounds_and_recovered_from(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    with s3_server(tmp_path_factory.mktemp("s3-outage")) as own:  # its own: it goes down
        # A stopped server refuses connections at once: the timeout matters only after.
        store = open_blobs(s3_settings(own, tmp_path, "outage", s3_timeout_s=2.0))
        store.put("images/j/0.png", b"before")
        own.stop()
        for call in (
            lambda: store.get("images/j/0.png"),
            lambda: store.put("images/j/1.png", b"during"),
            lambda: store.delete_prefix("images/j"),
        ):
            started = time.monotonic()
            with pytest.raises(BlobStoreUnavailable) as raised:
                call()
            assert time.monotonic() - started < 20  # bounded, with a wide margin
            message = str(raised.value)
            assert own.endpoint_url in message and f"s3://{own.bucket}/outage" in message
            assert "DAGUERRE_S3_ENDPOINT_URL" in message  # what to check
        own.start()  # the same ports: the same store object works again
        store.put("images/j/1.png", b"after")
        assert store.get("images/j/1.png") == b"after"


def test_moto_server_works_as_well(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The other server tests/support offers: the same calls, through moto's imitation."""
    with s3_server(tmp_path_factory.mktemp("moto"), kind="moto") as moto:
        store = open_blobs(s3_settings(moto, tmp_path, "m"))
        store.put("uploads/j/source.png", b"source")
        assert store.keys("uploads/j") == ["uploads/j/source.png"]
        url = store.presigned_url("uploads/j/source.png", 60)
        assert url is not None and httpx.get(url).content == b"source"
        store.delete_prefix("uploads/j")
        with pytest.raises(KeyError):
            store.get("uploads/j/source.png")
