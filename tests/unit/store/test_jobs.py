"""The job table's state machine, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from daguerre.domain import Account, ImageRecord, JobSpec, JobStatus
from daguerre.store import Store
from daguerre.store.tables import JobRow, utcnow

SPEC = JobSpec(prompt="a red circle", model="builtin", n=2, width=64, height=64, seed=7)


@pytest.fixture
def account(store: Store) -> Account:
    return store.accounts.create_account("alice", "plus", "chat")


def image(job_id: str, account: Account, index: int, key: str = "k") -> ImageRecord:
    return ImageRecord(
        f"img-{job_id}-{index}", job_id, index, account.id, f"{key}/{index}", None,
        "image/png", 64, 64,
    )  # fmt: skip


def test_api_keys_are_hashed_and_authenticate(store: Store, account: Account) -> None:
    key = store.accounts.create_api_key(account.id)
    assert key.startswith("dg-")
    assert store.accounts.authenticate(key) == account
    assert store.accounts.authenticate(key + "x") is None
    with store.db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM api_keys").scalar()
    assert stored != key and len(stored) == 64


def test_create_is_idempotent_by_id(store: Store, account: Account) -> None:
    job, created = store.jobs.create("j1", account.id, "chat", SPEC)
    assert created and job.status is JobStatus.QUEUED and job.spec == SPEC
    again, created_again = store.jobs.create("j1", account.id, "chat", SPEC)
    assert not created_again and again.id == "j1" and again.created_at == job.created_at


def test_lifecycle_to_success_with_idempotent_images(store: Store, account: Account) -> None:
    store.jobs.create("j1", account.id, "chat", SPEC)
    assert store.jobs.mark_running("j1", total_steps=8, resumed_from_step=None)
    assert store.jobs.record_progress("j1", 3, "previews/j1/latest.png")
    job = store.jobs.get("j1")
    assert job is not None
    assert (job.status, job.step, job.total_steps, job.preview_key) == (
        JobStatus.RUNNING, 3, 8, "previews/j1/latest.png"
    )  # fmt: skip
    # a retried attempt resumes from a checkpoint
    assert store.jobs.mark_running("j1", total_steps=8, resumed_from_step=2)
    images = [image("j1", account, 0), image("j1", account, 1)]
    assert store.jobs.complete("j1", images)
    assert not store.jobs.complete("j1", images)  # already done: no second write
    job = store.jobs.get("j1")
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED and job.step == 8
    assert (job.attempts, job.resumed_from_step) == (2, 2)
    assert [i.id for i in job.images] == ["img-j1-0", "img-j1-1"]
    assert job.started_at is not None and job.finished_at is not None
    assert store.jobs.get_image("img-j1-1") == images[1]


def test_revised_prompt_round_trips(store: Store, account: Account) -> None:
    store.jobs.create("j1", account.id, "chat", SPEC)
    assert store.jobs.mark_running("j1", total_steps=8, resumed_from_step=None)
    read = "a large red circle in the center, on a white background"
    images = [replace(image("j1", account, 0), revised_prompt=read), image("j1", account, 1)]
    assert store.jobs.complete("j1", images)
    job = store.jobs.get("j1")
    assert job is not None
    assert [i.revised_prompt for i in job.images] == [read, None]
    assert store.jobs.get_image("img-j1-0") == images[0]
    page = store.images.list_for(account.id, 10)
    assert page is not None
    assert {i.image.id: i.image.revised_prompt for i in page.images} == {
        "img-j1-0": read, "img-j1-1": None
    }  # fmt: skip


def test_terminal_status_is_sticky(store: Store, account: Account) -> None:
    store.jobs.create("j1", account.id, "chat", SPEC)
    assert store.jobs.finish("j1", JobStatus.CANCELLED, "by owner", "cancelled")
    assert not store.jobs.finish("j1", JobStatus.FAILED, "late failure")
    assert not store.jobs.mark_running("j1", 8, None)
    assert not store.jobs.record_progress("j1", 4, None)
    assert not store.jobs.complete("j1", [image("j1", account, 0)])
    job = store.jobs.get("j1")
    assert job is not None
    assert (job.status, job.error, job.error_code, job.images) == (
        JobStatus.CANCELLED, "by owner", "cancelled", []
    )  # fmt: skip
    with pytest.raises(ValueError, match="not a terminal"):
        store.jobs.finish("j1", JobStatus.RUNNING)


def test_progress_only_while_running(store: Store, account: Account) -> None:
    store.jobs.create("j1", account.id, "chat", SPEC)
    assert not store.jobs.record_progress("j1", 1, None)


def test_queue_position_and_counts(store: Store, account: Account) -> None:
    for name in ("a", "b", "c"):
        store.jobs.create(name, account.id, "chat", SPEC)
    store.jobs.create("other-pool", account.id, "api", SPEC)
    jobs = {name: store.jobs.get(name) for name in ("a", "b", "c", "other-pool")}
    stats = store.queue_stats
    assert [stats.queue_position(jobs[n]) for n in "abc"] == [0, 1, 2]  # type: ignore[arg-type]
    assert stats.queue_position(jobs["other-pool"]) == 0  # type: ignore[arg-type]
    store.jobs.mark_running("a", 8, None)
    assert stats.queue_position(jobs["c"]) == 1  # type: ignore[arg-type]
    assert stats.running_count("chat") == 1


def test_recent_render_seconds(store: Store, account: Account) -> None:
    assert store.queue_stats.recent_render_seconds("chat") is None
    store.jobs.create("a", account.id, "chat", SPEC)
    store.jobs.mark_running("a", 8, None)
    time.sleep(0.05)
    store.jobs.complete("a", [])
    seconds = store.queue_stats.recent_render_seconds("chat")
    assert seconds is not None and 0.04 < seconds < 5


def test_discard_only_forgets_queued_jobs(store: Store, account: Account) -> None:
    store.jobs.create("a", account.id, "chat", SPEC)
    store.jobs.create("b", account.id, "chat", SPEC)
    store.jobs.mark_running("b", 8, None)
    store.jobs.discard("a")
    store.jobs.discard("b")
    assert store.jobs.get("a") is None
    assert store.jobs.get("b") is not None


def test_requeue_keeps_progress_and_counts_the_preemption(store: Store) -> None:
    account = store.accounts.create_account("r", "free", "api")
    store.jobs.create("j", account.id, "api", JobSpec(prompt="p", model="fake"), priority=3)
    assert not store.jobs.requeue("j", 2)  # not running: nothing to give back
    store.jobs.mark_running("j", 8, None)
    store.jobs.record_progress("j", 3, None)
    assert store.jobs.requeue("j", 3)
    job = store.jobs.get("j")
    assert job is not None and (job.status, job.step, job.preemptions) == (JobStatus.QUEUED, 3, 1)
    store.jobs.mark_running("j", 8, 3)
    assert store.jobs.requeue("j", 5, JobStatus.DEFERRED)
    job = store.jobs.get("j")
    assert job is not None and (job.status, job.preemptions) == (JobStatus.DEFERRED, 2)
    store.jobs.finish("j", JobStatus.CANCELLED, "by owner")
    assert not store.jobs.requeue("j", 6)  # terminal is sticky


def test_backlog_by_priority_counts_the_pools_waiting_jobs_per_key(
    store: Store, account: Account
) -> None:
    spec = JobSpec(prompt="p", model="fake")
    for i, priority in enumerate([1, 3, 3, 5]):
        store.jobs.create(f"w{i}", account.id, "api", spec, priority=priority)
    store.jobs.create("d", account.id, "api", spec, priority=5, status=JobStatus.DEFERRED)
    store.jobs.create("other-pool", account.id, "chat", spec, priority=1)
    store.jobs.create("running", account.id, "api", spec, priority=1)
    store.jobs.mark_running("running", 8, None)
    assert store.queue_stats.backlog_by_priority("api") == {1: 1, 3: 2, 5: 2}
    assert store.queue_stats.backlog("api") == 5


def test_client_ids_are_unique_per_account_only(store: Store, account: Account) -> None:
    other = store.accounts.create_account("bob", "free", "chat")
    mine, _ = store.jobs.create("row-a", account.id, "chat", SPEC, client_id="same")
    theirs, _ = store.jobs.create("row-b", other.id, "chat", SPEC, client_id="same")
    assert mine.client_id == theirs.client_id == "same"
    assert mine.public_id == "same" and mine.id == "row-a"
    # Found by the owner's own name for it, and by nobody else.
    found = store.jobs.find(account.id, "same")
    assert found is not None and found.id == "row-a" and found.client_id == "same"
    found = store.jobs.find(other.id, "same")
    assert found is not None and found.id == "row-b"
    assert store.jobs.find(other.id, "row-a") is None
    # A job the client named is not found by its row id; one it did not name is.
    assert store.jobs.find(account.id, "row-a") is None
    plain, _ = store.jobs.create("row-c", account.id, "chat", SPEC)
    assert plain.public_id == "row-c"
    found = store.jobs.find(account.id, "row-c")
    assert found is not None and found.id == "row-c"


def test_waiting_before_pages_through_old_waiting_jobs(store: Store, account: Account) -> None:
    for i in range(5):
        store.jobs.create(f"w{i}", account.id, "chat", SPEC)
    store.jobs.finish("w4", JobStatus.FAILED, "gone")
    with store.db.begin() as conn:
        conn.execute(update(JobRow).values(created_at=utcnow() - timedelta(minutes=5)))
    store.jobs.create("young", account.id, "chat", SPEC)
    cutoff = utcnow() - timedelta(minutes=1)
    seen: list[str] = []
    page, after = store.jobs.waiting_before(cutoff, None, 2)
    while True:
        seen += [job.id for job in page]
        if after is None:
            break
        page, after = store.jobs.waiting_before(cutoff, after, 2)
    assert sorted(seen) == ["w0", "w1", "w2", "w3"]
