"""An account's images, one page at a time: the read behind ``GET /v1/images``.

Every query takes the account, so it can only ever return the caller's own rows; a cursor
naming another account's image is no cursor at all, exactly like a missing one.

The order is the order the images were asked for: their job's creation time, newest first,
then the job id (a tie-break, so the order is total), then the image's index within its job.
That order walks ``ix_jobs_account_created``, so a page reads only the account's own rows.
Pages are keyset pages (the rows after the last one shown), not offsets: a page deep in a
long history costs what the first does, and an image added meanwhile shifts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import ImageRecord
from daguerre.store.tables import ConversationRow, ImageRow, JobRow, TurnRow


@dataclass(frozen=True)
class ListedImage:
    """One image as the list shows it: the row, and what its job says about it."""

    image: ImageRecord
    created_at: float  # the image's own creation (Unix seconds)
    job_id: str  # the job's id as its owner knows it (JobRecord.public_id)
    prompt: str | None
    conversation_id: str | None  # the conversation whose turn made it, if one did


@dataclass(frozen=True)
class ImagePage:
    images: list[ListedImage]
    has_more: bool


_IMAGES = ImageRow.__table__  # its rows flat: the image's columns beside the job's
# Where a page starts: just past this (job created_at, job id, image index).
_Cursor = tuple[datetime, str, int]


def _record(row: Any) -> ImageRecord:
    return ImageRecord(**{f.name: getattr(row, f.name) for f in fields(ImageRecord)})


class ImageStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def list_for(self, account_id: str, limit: int, after: str | None = None) -> ImagePage | None:
        """Up to ``limit`` of the account's images, newest first, from just past the image
        ``after``. None when ``after`` is not one of the account's images."""
        with self._sessions() as session:
            cursor = None
            if after is not None:
                cursor = self._cursor(session, account_id, after)
                if cursor is None:
                    return None
            rows = session.execute(_page_query(account_id, cursor).limit(limit + 1)).all()
            shown = rows[:limit]
            conversations = _conversations_of(session, account_id, {r.job_id for r in shown})
        images = [_listed(row, conversations.get(row.job_id)) for row in shown]
        return ImagePage(images=images, has_more=len(rows) > limit)

    @staticmethod
    def _cursor(session: Session, account_id: str, image_id: str) -> _Cursor | None:
        found = session.execute(
            select(JobRow.created_at, JobRow.id, ImageRow.index)
            .join(JobRow, JobRow.id == ImageRow.job_id)
            .where(ImageRow.id == image_id, ImageRow.account_id == account_id)
        ).first()
        return None if found is None else (found[0], found[1], found[2])


def _page_query(account_id: str, cursor: _Cursor | None) -> Select[Any]:
    query = (
        select(_IMAGES, JobRow.client_id, JobRow.spec)
        .join(JobRow, JobRow.id == ImageRow.job_id)
        # Both sides name the owner: the index serves the first, the second is a guard.
        .where(JobRow.account_id == account_id, ImageRow.account_id == account_id)
        .order_by(JobRow.created_at.desc(), JobRow.id.desc(), ImageRow.index.asc())
    )
    if cursor is None:
        return query
    created, job_id, index = cursor
    return query.where(
        or_(
            JobRow.created_at < created,
            and_(JobRow.created_at == created, JobRow.id < job_id),
            and_(JobRow.created_at == created, JobRow.id == job_id, ImageRow.index > index),
        )
    )


def _conversations_of(session: Session, account_id: str, job_ids: set[str]) -> dict[str, str]:
    """job id -> the id of the account's conversation whose turn made that job."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(TurnRow.job_id, TurnRow.conversation_id)
        .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
        .where(ConversationRow.account_id == account_id, TurnRow.job_id.in_(job_ids))
    ).all()
    return {job_id: conversation_id for job_id, conversation_id in rows}


def _listed(row: Any, conversation_id: str | None) -> ListedImage:
    prompt = row.spec.get("prompt") if isinstance(row.spec, dict) else None
    return ListedImage(
        image=_record(row),
        created_at=row.created_at.timestamp(),
        job_id=row.client_id if row.client_id is not None else row.job_id,
        prompt=prompt if isinstance(prompt, str) else None,
        conversation_id=conversation_id,
    )
