"""The orphan reconciler: waiting rows whose workflow was never started are started (at
the priority admission gave them) or failed with a reason; live ones are left alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from daguerre.config import Settings
from daguerre.domain import Account, JobSpec, JobStatus
from daguerre.engine.client import EngineUnavailable
from daguerre.gateway.access.controls import LiveControls
from daguerre.gateway.app import create_app
from daguerre.gateway.services import reconciler as reconciler_module
from daguerre.gateway.services.reconciler import Reconciler
from daguerre.priority import DEFERRED
from daguerre.store import Store
from daguerre.store.tables import JobRow, utcnow
from tests.support.engine import FakeEngine

SPEC = JobSpec(prompt="orphan", model="builtin", width=64, height=64)


class Engine(FakeEngine):
    """The fake engine, with workflow states a test sets, and the lookups counted."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, render=False)
        self.statuses: dict[str, str] = {}
        self.asked: list[str] = []

    async def submit(self, job_id: str, *args: object, **kwargs: object) -> None:
        await super().submit(job_id, *args, **kwargs)  # type: ignore[arg-type]
        self.statuses[job_id] = "RUNNING"

    async def status(self, job_id: str) -> str | None:
        if not self.available:
            raise EngineUnavailable("the fake engine is switched off")
        self.asked.append(job_id)
        return self.statuses.get(job_id)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, orphan_min_age_s=30)


@pytest.fixture
def account(store: Store) -> Account:
    return store.accounts.create_account("alice", "pro", "api")


@pytest.fixture
def engine(store: Store) -> Engine:
    return Engine(store)


@pytest.fixture
def reconciler(settings: Settings, store: Store, engine: Engine) -> Reconciler:
    return Reconciler(settings, store, engine, LiveControls(settings, store.controls))


def orphan(
    store: Store,
    account: Account,
    job_id: str,
    age_s: float = 120,
    spec: JobSpec = SPEC,
    **values: object,
) -> None:
    """A row recorded ``age_s`` ago whose workflow nobody started."""
    store.jobs.create(job_id, account.id, "api", spec, tier="pro", **values)  # type: ignore[arg-type]
    with store.db.begin() as conn:
        conn.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(created_at=utcnow() - timedelta(seconds=age_s))
        )


def status_of(store: Store, job_id: str) -> JobStatus:
    job = store.jobs.get(job_id)
    assert job is not None
    return job.status


async def test_an_orphan_is_started_and_a_young_row_left_alone(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    orphan(store, account, "old", priority=1)
    orphan(store, account, "young", age_s=1, priority=1)  # its submit may be under way
    swept = await reconciler.sweep()
    assert (swept.started, swept.failed) == (1, 0)
    assert engine.submitted == [("old", "api", 1, account.id)]
    assert status_of(store, "old") is JobStatus.QUEUED  # its worker takes it from here


async def test_a_deferred_orphan_keeps_the_lowest_priority(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    orphan(store, account, "later", status=JobStatus.DEFERRED, priority=DEFERRED)
    await reconciler.sweep()
    # Not the tier's priority (pro: 1): it still runs after every queued job.
    assert engine.submitted == [("later", "api", DEFERRED, account.id)]


async def test_a_live_workflow_is_asked_about_once(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    orphan(store, account, "busy", priority=1)
    engine.statuses["busy"] = "RUNNING"
    assert (await reconciler.sweep()).started == 0
    assert (await reconciler.sweep()).checked == 0
    assert engine.asked == ["busy"] and engine.submitted == []


async def test_an_edit_whose_upload_is_gone_is_failed_with_the_reason(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    kept = JobSpec(**{**SPEC.__dict__, "source_key": "uploads/kept/source.png"})
    lost = JobSpec(**{**SPEC.__dict__, "source_key": "uploads/lost/source.png"})
    store.blobs.put("uploads/kept/source.png", b"png")
    orphan(store, account, "kept", spec=kept, priority=1)
    orphan(store, account, "lost", spec=lost, priority=1)
    swept = await reconciler.sweep()
    assert (swept.started, swept.failed) == (1, 1)
    assert [s[0] for s in engine.submitted] == ["kept"]
    job = store.jobs.get("lost")
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error is not None and "source image" in job.error and "lost" in job.error


async def test_a_workflow_that_ended_leaving_the_row_waiting_fails_it(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    orphan(store, account, "ended", priority=1)
    engine.statuses["ended"] = "TERMINATED"
    assert (await reconciler.sweep()).failed == 1
    assert status_of(store, "ended") is JobStatus.FAILED and engine.submitted == []


async def test_finished_rows_are_not_touched(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    orphan(store, account, "done", priority=1)
    store.jobs.finish("done", JobStatus.CANCELLED, "cancelled by its owner")
    assert (await reconciler.sweep()).checked == 0 and engine.asked == []


async def test_the_sweep_walks_every_page(
    store: Store,
    account: Account,
    engine: Engine,
    reconciler: Reconciler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconciler_module, "PAGE", 2)
    for i in range(5):
        orphan(store, account, f"o{i}", age_s=100 + i, priority=1)
    assert (await reconciler.sweep()).started == 5
    assert sorted(s[0] for s in engine.submitted) == [f"o{i}" for i in range(5)]


async def test_without_the_engine_the_sweep_waits_and_changes_nothing(
    store: Store, account: Account, engine: Engine, reconciler: Reconciler
) -> None:
    orphan(store, account, "waiting", priority=1)
    engine.available = False
    with pytest.raises(EngineUnavailable):
        await reconciler.sweep()
    assert status_of(store, "waiting") is JobStatus.QUEUED
    engine.available = True
    assert (await reconciler.sweep()).started == 1


async def test_a_gateway_reconciles_at_start_up(
    settings: Settings, store: Store, account: Account, engine: Engine
) -> None:
    orphan(store, account, "left-by-a-dead-gateway", priority=1)
    app = create_app(settings, workflows=engine, store=store)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw"),
    ):
        for _ in range(100):
            if engine.submitted:
                break
            await asyncio.sleep(0.01)
    assert [s[0] for s in engine.submitted] == ["left-by-a-dead-gateway"]
