"""Metadata in SQL (SQLite by default, PostgreSQL when configured) and blobs in a folder."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from daguerre.config import Settings
from daguerre.store.accounts import AccountStore
from daguerre.store.blobs import BlobStore, LocalBlobStore
from daguerre.store.controls import ControlStore
from daguerre.store.conversations import ConversationStore
from daguerre.store.db import make_engine, make_sessions
from daguerre.store.jobs import JobStore
from daguerre.store.migrate import upgrade_head
from daguerre.store.private import private_dir

__all__ = [
    "AccountStore",
    "BlobStore",
    "ControlStore",
    "ConversationStore",
    "JobStore",
    "LocalBlobStore",
    "Store",
    "open_store",
]


@dataclass
class Store:
    engine: Engine
    accounts: AccountStore
    jobs: JobStore
    blobs: BlobStore
    conversations: ConversationStore
    controls: ControlStore

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()


def open_store(settings: Settings, migrate: bool = True) -> Store:
    """Connect to the database (bringing its schema up to date) and the blob folder."""
    private_dir(settings.data_dir)  # 0700: it holds the database, blobs and secrets
    engine = make_engine(settings.db_url)
    if migrate:
        upgrade_head(engine)
    sessions = make_sessions(engine)
    return Store(
        engine=engine,
        accounts=AccountStore(sessions),
        jobs=JobStore(engine, sessions),
        blobs=LocalBlobStore(settings.blobs_path),
        conversations=ConversationStore(sessions),
        controls=ControlStore(sessions),
    )
