"""The retention sweep: finished jobs' leftover checkpoints go after a grace period, and
the images, uploads and previews of jobs past their tier's retention go too (the row
stays, marked expired). Run on the local folder and on a real S3-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from daguerre.blob_layout import checkpoint_key, upload_keys
from daguerre.config import Settings
from daguerre.domain import JobStatus
from daguerre.gateway.access.controls import LiveControls, tier_key
from daguerre.gateway.metrics import Metrics
from daguerre.gateway.services.retention import RetentionSweeper
from daguerre.store.tables import JobRow, utcnow
from tests.unit.gateway.conftest import Gateway, running_gateway

GENERATE = "/v1/images/generations"


@pytest.fixture(scope="module", params=["local", "s3"])
def blob_values(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    if request.param == "local":
        yield {}
        return
    from tests.support.s3_server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        yield server.settings_values()
    finally:
        server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, blob_values: dict[str, Any]) -> AsyncIterator[Gateway]:
    values = {"blob_url": f"{blob_values['blob_url']}/{tmp_path.name}"} if blob_values else {}
    settings = Settings(
        data_dir=tmp_path,
        events_poll_interval_s=0.02,
        retention_sweep_s=0,  # the test sweeps by hand
        checkpoint_grace_s=120,
        **{**blob_values, **values},
    )
    async with running_gateway(settings) as gateway:
        yield gateway


async def _finished_job(gateway: Gateway, key: str, ended: datetime) -> str:
    """A finished job of the key's account, with a leftover checkpoint and an upload,
    that ended at ``ended``."""
    body = {"prompt": "a", "size": "64x64", "response_format": "url"}
    response = await gateway.client.post(GENERATE, json=body, headers=gateway.auth(key))
    assert response.status_code == 200, response.text
    image_id = response.json()["data"][0]["url"].split("?")[0].rsplit("/", 1)[1]
    image = gateway.store.jobs.get_image(image_id)
    assert image is not None
    job_id = image.job_id
    gateway.store.blobs.put(checkpoint_key(job_id, 7), b"state")
    gateway.store.blobs.put(upload_keys(job_id)[0], b"upload")
    with gateway.store.db.begin() as conn:
        conn.execute(update(JobRow).where(JobRow.id == job_id).values(finished_at=ended))
    return job_id


def _sweeper(gateway: Gateway) -> tuple[RetentionSweeper, LiveControls, Metrics]:
    controls = LiveControls(gateway.settings, gateway.store.controls)
    controls.refresh()
    metrics = Metrics()
    return RetentionSweeper(gateway.settings, gateway.store, controls, metrics), controls, metrics


def _held(gateway: Gateway, job_id: str) -> set[str]:
    blobs = gateway.store.blobs
    held = set()
    for prefix in ("images", "uploads", "previews", "checkpoints"):
        if blobs.keys(f"{prefix}/{job_id}"):
            held.add(prefix)
    return held


async def test_sweep_deletes_leftovers_and_expired_blobs_per_tier(gateway: Gateway) -> None:
    now = utcnow()
    # bob is on the free tier (30 days in the shipped tiers file), alice on pro (kept).
    old_free = await _finished_job(gateway, gateway.other_key, now - timedelta(days=31))
    new_free = await _finished_job(gateway, gateway.other_key, now - timedelta(days=2))
    just_now = await _finished_job(gateway, gateway.other_key, now - timedelta(seconds=10))
    old_pro = await _finished_job(gateway, gateway.key, now - timedelta(days=400))
    everything = {"images", "uploads", "previews", "checkpoints"}
    assert _held(gateway, old_free) == everything
    sweeper, controls, metrics = _sweeper(gateway)

    swept = await sweeper.sweep(now)

    assert swept.expired == {"free": 1}
    assert swept.leftovers == 2  # new_free and old_pro: past the grace, not expired
    assert _held(gateway, old_free) == set()
    assert _held(gateway, new_free) == _held(gateway, old_pro) == {"images", "uploads", "previews"}
    assert _held(gateway, just_now) == everything  # its last attempt may still be cleaning up
    job = gateway.store.jobs.get(old_free)
    assert job is not None and job.expired_at is not None and job.status is JobStatus.SUCCEEDED
    text = metrics.render_text().decode()
    assert 'daguerre_retention_jobs_total{tier="free",what="expired"} 1.0' in text
    assert 'daguerre_retention_jobs_total{tier="",what="leftovers"} 2.0' in text

    # Nothing is walked twice; an operator's live change to a tier applies at once.
    assert (await sweeper.sweep(now)).expired == {}
    gateway.store.controls.put(tier_key("pro"), {"retention_days": 365})
    controls.refresh()
    assert (await sweeper.sweep(now)).expired == {"pro": 1}
    assert _held(gateway, old_pro) == set()
    assert _held(gateway, new_free) == {"images", "uploads", "previews"}


async def test_unfinished_jobs_are_never_swept(gateway: Gateway) -> None:
    now = utcnow()
    job_id = await _finished_job(gateway, gateway.other_key, now - timedelta(days=60))
    with gateway.store.db.begin() as conn:  # as if it were still running
        conn.execute(update(JobRow).where(JobRow.id == job_id).values(status="running"))
    sweeper, _, _ = _sweeper(gateway)
    swept = await sweeper.sweep(now)
    assert swept.expired == {} and swept.leftovers == 0
    assert "checkpoints" in _held(gateway, job_id)
