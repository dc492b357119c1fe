"""The operators' audit log: each change made through the admin API, who made it and
when, newest first (the operator page shows it; ``GET /admin/audit``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daguerre.store.tables import AuditRow, utcnow


@dataclass(frozen=True)
class AuditEntry:
    id: str
    actor: str  # "admin-key", or the account id of an admin-scoped key
    action: str  # the method and path, e.g. "PATCH /admin/tiers/free"
    change: Any  # the JSON the operator sent (None for a reset)
    created_at: float  # Unix seconds


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, actor: str, action: str, change: Any = None) -> AuditEntry:
        row = AuditRow(
            id=f"aud_{secrets.token_hex(12)}",
            actor=actor,
            action=action,
            change=change,
            created_at=utcnow(),
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            return _entry(row)

    def list(self, limit: int = 50) -> list[AuditEntry]:
        """The newest ``limit`` changes, newest first."""
        query = select(AuditRow).order_by(AuditRow.created_at.desc(), AuditRow.id.desc())
        with self._sessions() as session:
            return [_entry(r) for r in session.execute(query.limit(limit)).scalars()]


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        actor=row.actor,
        action=row.action,
        change=row.change,
        created_at=row.created_at.timestamp(),
    )
