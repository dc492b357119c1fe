"""Named leases: one process of the deployment at a time does a chore, and another
takes over when the holder stops renewing (it died, or was scaled away).

A lease is one row. Taking or renewing it is one conditional upsert: the row is written
when it is missing, already ours, or expired, and left alone otherwise; the holder read
back in the same transaction says who has it. Both SQLite and PostgreSQL do this
atomically (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from daguerre.store.tables import LeaseRow, utcnow


class Leases:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def hold(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` for ``ttl_s`` seconds, unless another
        holder's is still valid; whether ``holder`` has it now."""
        now = utcnow()
        table = LeaseRow.__table__
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(LeaseRow).values(
                name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_s)
            )
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
                    where=or_(table.c.holder == holder, table.c.expires_at < now),
                )
            )
            current = session.scalar(select(LeaseRow.holder).where(LeaseRow.name == name))
        return current == holder

    def release(self, name: str, holder: str) -> None:
        """Give lease ``name`` up, if ``holder`` has it (a clean shutdown): the next
        process to ask takes it at once instead of after the lease runs out."""
        with self._sessions.begin() as session:
            row = session.get(LeaseRow, name)
            if row is not None and row.holder == holder:
                session.delete(row)
