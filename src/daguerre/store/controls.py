"""Operators' live overrides, as JSON values under string keys (``tier:free``,
``feature:edit``, ``degraded:chat``). The database is the one place every gateway
replica reads, so a change made through any of them reaches all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from daguerre.store.tables import ControlRow, utcnow


class ControlStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def all(self) -> dict[str, Any]:
        with self._sessions() as session:
            return {row.key: row.value for row in session.scalars(select(ControlRow))}

    def put(self, key: str, value: Any) -> None:
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(ControlRow).values(key=key, value=value, updated_at=utcnow())
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )

    def delete(self, key: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(ControlRow).where(ControlRow.key == key))
