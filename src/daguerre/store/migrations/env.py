"""Alembic environment. Daguerre runs migrations itself (daguerre.store.migrate) and
hands over its connection; the ``alembic`` command line (for writing new revisions)
uses DAGUERRE_DATABASE_URL or the default SQLite file instead."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from daguerre.store.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from daguerre.config import Settings
    from daguerre.store.db import make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or Settings().db_url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
_run_online()
