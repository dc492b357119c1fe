"""A host cut off mid-transaction must not hold its row locks for hours.

The cut host's session stays open on the server, idle inside its transaction, holding the
rows it updated. Here the "cut host" is a connection that updates a row and then simply
never commits: to the server that is the same thing. Another connection then writes the
same row, as a worker taking over the job would, and must get through once the server
ends the abandoned session (``store.db``), not wait forever.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
from sqlalchemy import Engine, text

from daguerre.store import db


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> int:
    ms = 1500
    monkeypatch.setattr(
        db,
        "_POSTGRES_SESSION",
        tuple(
            s.replace(str(db.IDLE_IN_TRANSACTION_TIMEOUT_MS), str(ms)) for s in db._POSTGRES_SESSION
        ),
    )
    return ms


def test_a_session_abandoned_inside_a_transaction_releases_its_rows(
    postgres_url: str, short_timeout: int
) -> None:
    engine = db.make_engine(postgres_url)
    try:
        _race(engine, short_timeout)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS abandoned_probe"))
        engine.dispose()


def _race(engine: Engine, timeout_ms: int) -> None:
    # The stack closes the "cut host" connection even if the test fails, so that the
    # clean-up above is not itself blocked by its lock.
    with ExitStack() as stack:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS abandoned_probe"))
            conn.execute(text("CREATE TABLE abandoned_probe (id int primary key, step int)"))
            conn.execute(text("INSERT INTO abandoned_probe VALUES (1, 0)"))
        cut_host = stack.enter_context(engine.connect())
        cut_host.begin()
        cut_host.execute(text("UPDATE abandoned_probe SET step = 1 WHERE id = 1"))
        # ... and the host is gone: nothing more is sent on that connection.
        started = time.monotonic()
        with engine.begin() as taker:
            # Without the server-side timeout this waits for the lock indefinitely; the
            # statement timeout only turns such a hang into a failure of this test.
            taker.execute(text("SET LOCAL statement_timeout = 20000"))
            taker.execute(text("UPDATE abandoned_probe SET step = 2 WHERE id = 1"))
        waited = time.monotonic() - started
        assert timeout_ms / 1000 - 0.5 <= waited < 15, waited
        with engine.connect() as conn:
            assert conn.execute(text("SELECT step FROM abandoned_probe")).scalar_one() == 2
        cut_host.invalidate()  # the server ended it; the pool must not reuse it


def test_postgres_sessions_carry_the_timeout_and_keepalives(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            shown = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one()
            assert shown == f"{db.IDLE_IN_TRANSACTION_TIMEOUT_MS // 1000}s"
    finally:
        engine.dispose()
