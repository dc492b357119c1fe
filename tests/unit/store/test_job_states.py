"""A job's lifecycle, move by move: every move the table allows is written, and every
other one is refused and writes nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from daguerre.domain import TERMINAL_STATUSES, Account, JobSpec, JobStatus
from daguerre.store import Store
from daguerre.store.job_states import MOVES, allowed_from
from daguerre.store.tables import JobRow
from tests.support.stack import REPO

Q, D, R = JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.RUNNING
S, F, C = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED

# The lifecycle, spelled out: changing the table is a decision this test must be told of.
LIFECYCLE = {
    (Q, R), (Q, S), (Q, F), (Q, C),
    (D, R), (D, S), (D, F), (D, C),
    (R, R), (R, Q), (R, D), (R, S), (R, F), (R, C),
}  # fmt: skip
EVERY_PAIR = list(itertools.product(JobStatus, JobStatus))

SPEC = JobSpec(prompt="a red circle", model="builtin", width=64, height=64)

# Each named write of the repository: the status it moves a job to, and the write.
Write = Callable[[Store, str], bool]


def _changes(apply: Callable[[Any, str], bool]) -> Write:
    def write(store: Store, job_id: str) -> bool:
        with store.jobs.changes() as changes:
            return apply(changes, job_id)

    return write


WRITES: dict[str, tuple[JobStatus, Write]] = {
    "mark_running": (R, _changes(lambda c, j: c.mark_running(j, 8, None))),
    "resume_running": (R, _changes(lambda c, j: c.resume_running(j, 2))),
    "requeue": (Q, _changes(lambda c, j: c.requeue(j, 2))),
    "requeue deferred": (D, _changes(lambda c, j: c.requeue(j, 2, D))),
    "complete": (S, _changes(lambda c, j: c.complete(j, []))),
    "finish succeeded": (S, _changes(lambda c, j: c.finish(j, S))),
    "finish failed": (F, _changes(lambda c, j: c.finish(j, F, "broke", "render_failed"))),
    "finish cancelled": (C, _changes(lambda c, j: c.finish(j, C, "by owner", "cancelled"))),
    "cancel (owner, gateway)": (C, lambda store, j: store.jobs.cancel(j, "by its owner")),
    "fail (orphan, gateway)": (F, lambda store, j: store.jobs.fail(j, "no workflow")),
}


@pytest.fixture
def account(store: Store) -> Account:
    return store.accounts.create_account("alice", "plus", "chat")


def _job_in(store: Store, account: Account, status: JobStatus) -> str:
    """A job whose row is in ``status`` (set directly: the moves are under test)."""
    store.jobs.create("j", account.id, "chat", SPEC)
    with store.db.begin() as conn:
        conn.execute(update(JobRow).where(JobRow.id == "j").values(status=status.value))
    return "j"


def _row(store: Store, job_id: str) -> dict[str, Any]:
    with store.db.connect() as conn:
        row = conn.execute(select(JobRow.__table__).where(JobRow.id == job_id)).one()
    return dict(row._mapping)


def test_the_table_is_the_lifecycle() -> None:
    assert set(MOVES) == set(JobStatus)
    assert {(source, to) for source, targets in MOVES.items() for to in targets} == LIFECYCLE
    assert all(not MOVES[status] for status in TERMINAL_STATUSES)  # terminal is sticky
    assert allowed_from(R) == {Q, D, R} and allowed_from(Q) == allowed_from(D) == {R}


@pytest.mark.parametrize(("source", "to"), EVERY_PAIR, ids=lambda s: s.value)
def test_a_move_is_written_only_where_the_table_allows_it(
    store: Store, account: Account, source: JobStatus, to: JobStatus
) -> None:
    job_id = _job_in(store, account, source)
    before = _row(store, job_id)
    with store.jobs.changes() as changes:
        moved = changes.move(job_id, to)
    assert moved is ((source, to) in LIFECYCLE)
    if moved:
        assert _row(store, job_id)["status"] == to.value
    else:
        assert _row(store, job_id) == before  # refused: not a column written


@pytest.mark.parametrize("source", list(JobStatus), ids=lambda s: s.value)
@pytest.mark.parametrize("name", list(WRITES))
def test_every_named_write_goes_through_the_table(
    store: Store, account: Account, name: str, source: JobStatus
) -> None:
    to, write = WRITES[name]
    job_id = _job_in(store, account, source)
    before = _row(store, job_id)
    moved = write(store, job_id)
    assert moved is ((source, to) in LIFECYCLE)
    after = _row(store, job_id)
    if not moved:
        assert after == before
        return
    assert after["status"] == to.value
    if name.startswith("cancel"):
        assert (after["error"], after["error_code"]) == ("by its owner", "cancelled")
    if name.startswith("fail"):
        assert (after["error"], after["error_code"]) == ("no workflow", "render_failed")


def test_a_move_to_no_such_job_is_refused(store: Store) -> None:
    with store.jobs.changes() as changes:
        assert not changes.move("nobody", R)
    assert not store.jobs.cancel("nobody", "by its owner")


@pytest.mark.parametrize("source", list(JobStatus), ids=lambda s: s.value)
def test_progress_is_written_only_while_running(
    store: Store, account: Account, source: JobStatus
) -> None:
    job_id = _job_in(store, account, source)
    before = _row(store, job_id)
    written = store.jobs.record_progress(job_id, 3, "previews/j/latest.png")
    assert written is (source is R)
    after = _row(store, job_id)
    assert (after["status"], after["step"]) == ((R.value, 3) if written else (source.value, 0))
    if not written:
        assert after == before


def test_writes_that_name_an_impossible_target_raise(store: Store, account: Account) -> None:
    job_id = _job_in(store, account, R)
    with pytest.raises(ValueError, match="waits as queued or deferred"):
        store.jobs.requeue(job_id, 2, S)
    with pytest.raises(ValueError, match="not a terminal"):
        store.jobs.finish(job_id, Q)
    with pytest.raises(ValueError, match="starts queued or deferred"):
        store.jobs.create("k", account.id, "chat", SPEC, status=R)
    assert store.jobs.get("k") is None


def _status_writers(path: str, source: str) -> list[str]:
    """Where a module passes ``status=`` to an UPDATE's values (or the store's _update)."""
    return [
        f"{path}:{node.lineno}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"values", "_update"}
        and any(k.arg == "status" for k in node.keywords)
    ]


def test_only_the_state_machine_writes_a_status() -> None:
    """Every status after the insert is written by store/job_states.py's ``move``."""
    src = REPO / "src" / "daguerre"
    writers = [
        where
        for path in sorted(src.rglob("*.py"))
        if "migrations" not in path.parts
        for where in _status_writers(path.relative_to(src).as_posix(), path.read_text())
    ]
    assert [w.split(":")[0] for w in writers] == ["store/job_states.py"], writers
