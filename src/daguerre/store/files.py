"""Files an account uploaded (``/v1/files``), one row each, bytes in the blob store.

Every query takes the account, so it can only ever touch the caller's own rows: another
account's file id reads as missing, exactly like an id that never existed. Listing is a
keyset page, newest first, after a given file id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from daguerre.blob_layout import file_key
from daguerre.store.tables import FileRow, utcnow


@dataclass(frozen=True)
class StoredFile:
    id: str
    account_id: str
    filename: str
    purpose: str
    media_type: str
    bytes: int
    blob_key: str
    created_at: float  # Unix seconds


@dataclass(frozen=True)
class FilePage:
    files: list[StoredFile]
    has_more: bool


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


class FileStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(
        self, account_id: str, file_id: str, filename: str, purpose: str, media_type: str, size: int
    ) -> StoredFile:
        """Record a file whose bytes are already at ``file_key(account_id, file_id)``."""
        row = FileRow(
            id=file_id,
            account_id=account_id,
            filename=filename,
            purpose=purpose,
            media_type=media_type,
            bytes=size,
            blob_key=file_key(account_id, file_id),
            created_at=utcnow(),
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            return _stored(row)

    def get(self, account_id: str, file_id: str) -> StoredFile | None:
        with self._sessions() as session:
            row = session.get(FileRow, file_id)
            return _stored(row) if row is not None and row.account_id == account_id else None

    def list_for(self, account_id: str, limit: int, after: str | None = None) -> FilePage | None:
        """The account's files, newest first; None if ``after`` is not one of them."""
        query = select(FileRow).where(FileRow.account_id == account_id)
        with self._sessions() as session:
            if after is not None:
                cursor = session.get(FileRow, after)
                if cursor is None or cursor.account_id != account_id:
                    return None
                query = query.where(
                    or_(
                        FileRow.created_at < cursor.created_at,
                        and_(FileRow.created_at == cursor.created_at, FileRow.id < cursor.id),
                    )
                )
            order = (FileRow.created_at.desc(), FileRow.id.desc())
            rows = session.execute(query.order_by(*order).limit(limit + 1)).scalars().all()
            return FilePage([_stored(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def delete(self, account_id: str, file_id: str) -> StoredFile | None:
        """Forget the account's file; what it was (for its blob), or None."""
        with self._sessions.begin() as session:
            row = session.get(FileRow, file_id)
            if row is None or row.account_id != account_id:
                return None
            gone = _stored(row)
            session.execute(delete(FileRow).where(FileRow.id == file_id))
            return gone


def _stored(row: FileRow) -> StoredFile:
    return StoredFile(
        id=row.id,
        account_id=row.account_id,
        filename=row.filename,
        purpose=row.purpose,
        media_type=row.media_type,
        bytes=row.bytes,
        blob_key=row.blob_key,
        created_at=row.created_at.timestamp(),
    )
