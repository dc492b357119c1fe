"""Metadata in SQL (SQLite by default, PostgreSQL when configured) and blobs in a folder
(by default) or an S3-compatible object store (``blob_url``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, text

from daguerre.config import Settings
from daguerre.store.accounts import AccountStore
from daguerre.store.audit import AuditLog
from daguerre.store.blobs import BlobStore, BlobStoreUnavailable, LocalBlobStore
from daguerre.store.blobs_factory import open_blobs
from daguerre.store.controls import ControlStore
from daguerre.store.conversations import ConversationStore
from daguerre.store.db import make_engine, make_sessions
from daguerre.store.expiry import JobExpiry
from daguerre.store.files import FileStore
from daguerre.store.images import ImageStore
from daguerre.store.jobs import JobStore
from daguerre.store.leases import Leases
from daguerre.store.migrate import upgrade_head
from daguerre.store.moderation import ModerationLog
from daguerre.store.private import private_dir
from daguerre.store.queue_stats import QueueStats
from daguerre.store.threads import run_blocking
from daguerre.store.workers import WorkerRegistry

P = ParamSpec("P")
T = TypeVar("T")

__all__ = [
    "AccountStore",
    "AuditLog",
    "BlobStore",
    "BlobStoreUnavailable",
    "ControlStore",
    "ConversationStore",
    "FileStore",
    "ImageStore",
    "JobStore",
    "Leases",
    "LocalBlobStore",
    "QueueStats",
    "Store",
    "WorkerRegistry",
    "open_blobs",
    "open_store",
    "run_blocking",
]


@dataclass
class Store:
    """The store's synchronous parts, and ``run``: the one way async code calls them."""

    db: Engine  # SQLAlchemy's
    accounts: AccountStore
    jobs: JobStore
    queue_stats: QueueStats
    blobs: BlobStore
    conversations: ConversationStore
    images: ImageStore
    controls: ControlStore
    workers: WorkerRegistry  # what each worker process reports of itself
    expiry: JobExpiry
    files: FileStore  # what accounts uploaded through /v1/files
    moderation: ModerationLog  # refused prompts, for audit
    audit: AuditLog  # operators' changes through the admin API
    leases: Leases  # which process does a deployment-wide chore

    async def run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)`` (a method of this store, usually) from async code,
        on the store's threads (see threads.py): the event loop never waits on SQL or a
        blob."""
        return await run_blocking(call, *args, **kwargs)

    def ping(self) -> None:
        with self.db.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.db.dispose()


def open_store(settings: Settings, migrate: bool = True) -> Store:
    """Connect to the database (bringing its schema up to date) and the blob folder."""
    private_dir(settings.data_dir)  # 0700: it holds the database, blobs and secrets
    engine = make_engine(settings.db_url)
    if migrate:
        upgrade_head(engine)
    sessions = make_sessions(engine)
    return Store(
        db=engine,
        accounts=AccountStore(sessions),
        jobs=JobStore(engine, sessions),
        queue_stats=QueueStats(sessions),
        blobs=open_blobs(settings),
        conversations=ConversationStore(sessions),
        images=ImageStore(sessions),
        controls=ControlStore(sessions),
        workers=WorkerRegistry(sessions),
        expiry=JobExpiry(sessions),
        files=FileStore(sessions),
        moderation=ModerationLog(sessions),
        audit=AuditLog(sessions),
        leases=Leases(sessions),
    )
