"""A worker's render on the object-store backend: the images, their encodings and the
checkpoints (the engine's own blob store, through open_blobs) all in a real S3-compatible
server (tests/support/s3_server.py), and nothing in the local folder."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from daguerre.config import Settings
from daguerre.domain import JobStatus
from daguerre.store import Store
from daguerre.store.object_blobs import S3BlobStore
from daguerre.workers.activities import RenderActivities
from tests.support.s3_server import S3Server, s3_server
from tests.unit.workers.test_activities import env_with, running, submit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as started:
        yield started


@pytest.fixture
def settings(server: S3Server, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        model="fake",
        model_options={"step_delay_s": 0.005},
        checkpoint_interval_s=0,  # a checkpoint after every step
        progress_interval_s=0,
        heartbeat_timeout_s=0.3,
        **server.settings_values(tmp_path.name),
    )


@pytest.fixture
async def activities(settings: Settings, store: Store) -> AsyncIterator[RenderActivities]:
    async for acts in running(settings, store):
        yield acts


async def test_a_render_keeps_every_blob_in_the_bucket(
    activities: RenderActivities, store: Store, server: S3Server, tmp_path: Path
) -> None:
    assert isinstance(store.blobs, S3BlobStore)
    out = await env_with([]).run(activities.render, submit(store, "j1", n=2, steps=6))
    assert out.status == "succeeded"
    job = store.jobs.get("j1")
    assert job is not None and job.status is JobStatus.SUCCEEDED
    image = Image.open(io.BytesIO(store.blobs.get(job.images[0].blob_key)))
    assert image.format == "PNG" and image.size == (128, 128)
    listing = server.client().list_objects_v2(Bucket=server.bucket, Prefix=f"{tmp_path.name}/")
    names = {item["Key"] for item in listing.get("Contents", [])}
    assert f"{tmp_path.name}/{job.images[0].blob_key}" in names
    assert job.images[0].encoding_key and store.blobs.exists(job.images[0].encoding_key)
    # A checkpoint was taken at every step, and none is left once the job is done.
    assert store.blobs.keys("checkpoints/j1") == []
    assert not any("/checkpoints/" in name for name in names)
    assert not (tmp_path / "blobs").exists()
