"""A fresh store per test on SQLite, and on PostgreSQL when one is reachable.

PostgreSQL gets a throwaway database per test session (the server may be shared), at
DAGUERRE_TEST_POSTGRES_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from daguerre.config import Settings
from daguerre.store import Store, open_store
from tests.support.postgres import throwaway_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        _reset_postgres(url)
        settings = Settings(data_dir=tmp_path, database_url=url)
    store = open_store(settings)
    yield store
    store.close()
