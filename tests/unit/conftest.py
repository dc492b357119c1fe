"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daguerre.config import Settings
from daguerre.store import Store, open_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The defaults in a folder of the test's own; a module that needs other settings
    defines its own ``settings`` fixture."""
    return Settings(data_dir=tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A store on the test module's ``settings`` (a module defines that fixture), closed
    after the test. Folders with stores of their own (tests/unit/store, gateway's
    conftest) override it."""
    store = open_store(settings)
    yield store
    store.close()
