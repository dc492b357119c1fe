"""A throwaway PostgreSQL database, or a skip when no server answers.

At DAGUERRE_TEST_POSTGRES_URL, or postgresql+psycopg://postgres@127.0.0.1:5432/test
(trust auth). The server may be shared, so every use gets a database of its own,
dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_URL = os.environ.get(
    "DAGUERRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def throwaway_database() -> Iterator[str]:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
    name = f"daguerre_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as err:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {err.orig}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
