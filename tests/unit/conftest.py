"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daguerre.config import Settings
from daguerre.store import Store, open_store


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A store on the test module's ``settings`` (a module defines that fixture), closed
    after the test. Folders with stores of their own (tests/unit/store, gateway's
    conftest) override it."""
    store = open_store(settings)
    yield store
    store.close()
