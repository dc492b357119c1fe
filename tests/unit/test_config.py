from __future__ import annotations

import pytest
from pydantic import ValidationError

from daguerre.config import ModelCatalogEntry, Settings


def test_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("DAGUERRE_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("daguerre.db")
    assert settings.blobs_path == settings.data_dir / "blobs"
    assert {p: s.task_queue for p, s in settings.pools.items()} == {
        "chat": "daguerre-chat",
        "api": "daguerre-api",
    }
    assert settings.models["builtin"].size_names() == [
        "auto", "64x64", "128x128", "256x256", "512x512", "1024x1024"
    ]  # fmt: skip
    assert settings.temporal_address is None and settings.render_step_delay_s == 0


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGUERRE_PORT", "9000")
    monkeypatch.setenv("DAGUERRE_MODEL_PLUGINS", "a.b, c.d")
    monkeypatch.setenv("DAGUERRE_POOLS", '{"chat": {}, "api": {"concurrency": 3}}')
    monkeypatch.setenv("DAGUERRE_MODELS", '{"fake": {"sizes": [64], "auto_size": 64}}')
    monkeypatch.setenv("DAGUERRE_MODEL_OPTIONS", '{"threads": 1}')
    settings = Settings()
    assert settings.port == 9000
    assert settings.model_plugins == ["a.b", "c.d"]
    assert settings.pools["api"].concurrency == 3
    assert settings.pools["api"].task_queue == "daguerre-api"
    assert list(settings.models) == ["fake"]
    assert settings.model_options == {"threads": 1}


def test_products_map_to_pools_and_tiers_to_priorities() -> None:
    settings = Settings()
    assert settings.pool_for_product("chat") == "chat"
    assert settings.pool_for_product("unknown") == "chat"
    assert [settings.priority_for_tier(t) for t in ("pro", "plus", "free")] == [1, 2, 3]
    assert settings.priority_for_tier("mystery") == 3


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown pools"):
        Settings(product_pools={"chat": "nowhere"})
    with pytest.raises(ValidationError, match="auto_size"):
        ModelCatalogEntry(sizes=[64], auto_size=512)
