"""Database engines. SQLite (the embedded default) gets WAL and a busy timeout on every
connection, so the gateway and several worker processes can share one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from daguerre.store.private import FILE_MODE, private_dir, private_file, tighten


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the SSE feed) run while a worker writes progress.
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across process crashes in WAL mode; only power loss can drop
    # the last commits, which then replay from Temporal (activities are at least once).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A host cut off the network in the middle of a transaction leaves its session open on
# the server, holding its row locks, until the server notices the peer is gone: hours with
# default TCP settings. Another worker that takes over one of its jobs then waits on that
# row, and with it every write queued behind (seen as a whole worker stalling after a
# network cut, tests/cluster). Our transactions last milliseconds, so the server may end a
# session idle inside one after this long; the keepalives let both ends notice a dead peer
# within about 25 s even outside a transaction.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000
_POSTGRES_SESSION = (
    f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}",
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)
_CLIENT_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for statement in _POSTGRES_SESSION:
        cursor.execute(statement)
    cursor.close()
    # SET opened a transaction; leave the connection clean for the pool.
    dbapi_connection.commit()


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            # Prompts, key hashes, webhook URLs: for the service's user alone. The file
            # exists (0600) before SQLite opens it, so its -wal and -shm are 0600 too.
            private_dir(path.parent)
            private_file(path)
            for suffix in ("-wal", "-shm"):  # left by an older version, with the umask's
                side = path.with_name(path.name + suffix)
                if side.exists():
                    tighten(side, FILE_MODE)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15},
            # As many as the gateway's threads (anyio's 40) may ask for at once under a
            # surge: an overflow connection is opened (with its pragmas) and closed
            # again for every checkout, which profiling showed as real CPU.
            pool_size=40,
            max_overflow=8,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    postgres = make_url(url).get_backend_name() == "postgresql"
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        connect_args=_CLIENT_KEEPALIVES if postgres else {},
    )
    if postgres:
        event.listen(engine, "connect", _postgres_session)
    return engine


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
