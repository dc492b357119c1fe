"""Conversations and their turns. Every read takes the account, so a query can only
ever return the caller's own rows: another account's id looks exactly like a missing one."""

from __future__ import annotations

import secrets

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import ConversationRecord, TurnRecord
from daguerre.store.tables import ConversationRow, TurnRow, utcnow


def _conversation(row: ConversationRow, turn_count: int = 0) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        account_id=row.account_id,
        title=row.title,
        created_at=row.created_at.timestamp(),
        updated_at=row.updated_at.timestamp(),
        turn_count=turn_count,
    )


def _turn(row: TurnRow) -> TurnRecord:
    return TurnRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        index=row.index,
        prompt=row.prompt,
        mode=row.mode,
        parent_turn_id=row.parent_turn_id,
        job_id=row.job_id,
        created_at=row.created_at.timestamp(),
    )


class ConversationStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, account_id: str, title: str | None) -> ConversationRecord:
        now = utcnow()
        row = ConversationRow(
            id=f"conv_{secrets.token_hex(12)}",
            account_id=account_id,
            title=title,
            created_at=now,
            updated_at=now,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return _conversation(row)

    def get(self, account_id: str, conversation_id: str) -> ConversationRecord | None:
        with self._sessions() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None or row.account_id != account_id:
                return None
            count = session.scalar(
                select(func.count())
                .select_from(TurnRow)
                .where(TurnRow.conversation_id == conversation_id)
            )
            return _conversation(row, int(count or 0))

    def list_for(self, account_id: str, limit: int = 100) -> list[ConversationRecord]:
        counts = (
            select(TurnRow.conversation_id, func.count().label("n"))
            .group_by(TurnRow.conversation_id)
            .subquery()
        )
        with self._sessions() as session:
            rows = session.execute(
                select(ConversationRow, counts.c.n)
                .outerjoin(counts, counts.c.conversation_id == ConversationRow.id)
                .where(ConversationRow.account_id == account_id)
                .order_by(ConversationRow.updated_at.desc(), ConversationRow.id)
                .limit(limit)
            ).all()
            return [_conversation(row, int(n or 0)) for row, n in rows]

    def rename(self, account_id: str, conversation_id: str, title: str) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(ConversationRow)
                .where(
                    ConversationRow.id == conversation_id,
                    ConversationRow.account_id == account_id,
                )
                .values(title=title, updated_at=utcnow())
            )
        return bool(getattr(result, "rowcount", 0))

    def turns(self, conversation_id: str) -> list[TurnRecord]:
        """A conversation's turns in order (check ownership with ``get`` first)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(TurnRow)
                .where(TurnRow.conversation_id == conversation_id)
                .order_by(TurnRow.index)
            ).all()
            return [_turn(r) for r in rows]

    def add_turn(
        self,
        conversation_id: str,
        prompt: str,
        mode: str,
        parent_turn_id: str | None,
        job_id: str,
    ) -> TurnRecord:
        """Append a turn with the next number. Two concurrent appends collide on the
        unique (conversation, index): the loser takes the next number."""
        for _ in range(10):
            try:
                with self._sessions.begin() as session:
                    last = session.scalar(
                        select(func.max(TurnRow.index)).where(
                            TurnRow.conversation_id == conversation_id
                        )
                    )
                    now = utcnow()
                    row = TurnRow(
                        id=f"turn_{secrets.token_hex(12)}",
                        conversation_id=conversation_id,
                        index=int(last or 0) + 1,
                        prompt=prompt,
                        mode=mode,
                        parent_turn_id=parent_turn_id,
                        job_id=job_id,
                        created_at=now,
                    )
                    session.add(row)
                    session.execute(
                        update(ConversationRow)
                        .where(ConversationRow.id == conversation_id)
                        .values(updated_at=now)
                    )
                return _turn(row)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not number a turn of {conversation_id}")

    def find_turn(self, account_id: str, turn_id: str) -> TurnRecord | None:
        """The turn if its conversation is ``account``'s (else None, as for no turn)."""
        return self._owned_turn(account_id, TurnRow.id == turn_id)

    def turn_of_job(self, account_id: str, job_id: str) -> TurnRecord | None:
        """The account's turn whose job is ``job_id`` (the row's id), if any."""
        return self._owned_turn(account_id, TurnRow.job_id == job_id)

    def _owned_turn(self, account_id: str, which: ColumnElement[bool]) -> TurnRecord | None:
        with self._sessions() as session:
            row = session.scalar(
                select(TurnRow)
                .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
                .where(which, ConversationRow.account_id == account_id)
            )
            return _turn(row) if row is not None else None

    def discard(self, conversation_id: str) -> None:
        """Forget a conversation whose first turn was refused (it was never shown)."""
        with self._sessions.begin() as session:
            session.execute(delete(TurnRow).where(TurnRow.conversation_id == conversation_id))
            session.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))

    def discard_turn(self, turn_id: str) -> None:
        """Forget a turn whose job could not be started (it was never acknowledged)."""
        with self._sessions.begin() as session:
            session.execute(delete(TurnRow).where(TurnRow.id == turn_id))
