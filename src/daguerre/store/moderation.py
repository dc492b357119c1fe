"""The moderation audit log: every refused prompt, per account, newest first."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daguerre.store.tables import ModerationRow, utcnow


@dataclass(frozen=True)
class Refusal:
    id: str
    account_id: str
    policy: str
    reason: str
    prompt: str
    created_at: float  # Unix seconds


class ModerationLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, account_id: str, policy: str, reason: str, prompt: str) -> Refusal:
        row = ModerationRow(
            id=f"mod_{secrets.token_hex(12)}",
            account_id=account_id,
            policy=policy,
            reason=reason,
            prompt=prompt,
            created_at=utcnow(),
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            return _refusal(row)

    def list(self, account_id: str | None = None, limit: int = 50) -> list[Refusal]:
        """The newest refusals, of one account or of all."""
        query = select(ModerationRow)
        if account_id is not None:
            query = query.where(ModerationRow.account_id == account_id)
        query = query.order_by(ModerationRow.created_at.desc(), ModerationRow.id.desc())
        with self._sessions() as session:
            return [_refusal(r) for r in session.execute(query.limit(limit)).scalars()]


def _refusal(row: ModerationRow) -> Refusal:
    return Refusal(
        id=row.id,
        account_id=row.account_id,
        policy=row.policy,
        reason=row.reason,
        prompt=row.prompt,
        created_at=row.created_at.timestamp(),
    )
