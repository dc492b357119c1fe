from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from daguerre.config import Settings
from daguerre.domain import ImageRecord, JobSpec
from daguerre.store import Store, open_store
from daguerre.store.migrate import alembic_config, current_revision, upgrade_head


def test_upgrade_head_creates_the_tables(store: Store) -> None:
    tables = set(inspect(store.db).get_table_names())
    assert {"accounts", "api_keys", "jobs", "images", "alembic_version"} <= tables
    assert {"conversations", "turns", "controls", "files", "moderation_refusals"} <= tables
    assert "leases" in tables  # 0013
    columns = {c["name"] for c in inspect(store.db).get_columns("jobs")}
    assert {"preemptions", "watched_until", "client_id", "swept_at", "expired_at"} <= columns
    keys = {c["name"] for c in inspect(store.db).get_columns("api_keys")}
    assert {"label", "expires_at", "scopes", "last_used_at"} <= keys
    accounts = {c["name"] for c in inspect(store.db).get_columns("accounts")}
    assert {"webhook_secret", "webhook_secret_previous"} <= accounts
    images = {c["name"] for c in inspect(store.db).get_columns("images")}
    assert "revised_prompt" in images
    assert "audit_log" in tables  # 0012
    assert current_revision(store.db) == "0013"


def test_upgrade_is_idempotent(store: Store) -> None:
    upgrade_head(store.db)
    upgrade_head(store.db)
    assert current_revision(store.db) == "0013"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    with store.db.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "daguerre.db").exists()
    store.close()


def test_migrations_match_the_tables(store: Store) -> None:
    """tables.py (what queries use) and the migrations (what databases get) agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from daguerre.store.tables import Base

    with store.db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_revised_prompt_migration_keeps_older_images(store: Store) -> None:
    """0009 adds images.revised_prompt: images stored before it read back as None, and
    the downgrade drops the column again."""
    with store.db.begin() as conn:
        command.downgrade(alembic_config(conn), "0008")
    assert "revised_prompt" not in {c["name"] for c in inspect(store.db).get_columns("images")}
    account = store.accounts.create_account("alice", "pro", "api")
    store.jobs.create("j1", account.id, "api", JobSpec(prompt="a", model="builtin"))
    with store.db.begin() as conn:  # an image row as 0008 wrote it
        conn.execute(
            text(
                'INSERT INTO images (id, job_id, "index", account_id, blob_key, media_type,'
                " width, height, created_at) VALUES ('img-j1-0', 'j1', 0, :account, 'k/0',"
                " 'image/png', 64, 64, CURRENT_TIMESTAMP)"
            ),
            {"account": account.id},
        )
    upgrade_head(store.db)
    assert current_revision(store.db) == "0013"
    assert store.jobs.get_image("img-j1-0") == ImageRecord(
        "img-j1-0", "j1", 0, account.id, "k/0", None, "image/png", 64, 64
    )
