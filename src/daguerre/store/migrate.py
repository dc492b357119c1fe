"""Brings a database to the newest schema (``alembic upgrade head``) at start-up.

Several processes may start at once (a gateway and its workers), so the upgrade runs
under a lock: a file lock next to a SQLite database, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from daguerre.store.db import sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every Daguerre process.
_PG_LOCK_ID = 0x0DA6E44E


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_head(engine: Engine) -> None:
    db_file = sqlite_path(str(engine.url))
    if db_file is not None:
        with _file_lock(db_file.with_name(db_file.name + ".migrate.lock")), engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Released at commit, after the upgrade.
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        command.upgrade(alembic_config(conn), "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
