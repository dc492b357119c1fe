from __future__ import annotations

from pathlib import Path

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
    assert settings.temporal_address is None and settings.checkpoint_interval_s == 1.0
    assert settings.pools["api"].batch_images is None  # the model's own budget


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGUERRE_PORT", "9000")
    monkeypatch.setenv("DAGUERRE_MODEL_PLUGINS", "a.b, c.d")
    monkeypatch.setenv("DAGUERRE_POOLS", '{"chat": {}, "api": {"batch_images": 24}}')
    monkeypatch.setenv("DAGUERRE_MODELS", '{"fake": {"sizes": [64], "auto_size": 64}}')
    monkeypatch.setenv("DAGUERRE_MODEL_OPTIONS", '{"threads": 1}')
    settings = Settings()
    assert settings.port == 9000
    assert settings.model_plugins == ["a.b", "c.d"]
    assert settings.pools["api"].batch_images == 24
    assert settings.pools["api"].task_queue == "daguerre-api"
    assert list(settings.models) == ["fake"]
    assert settings.model_options == {"threads": 1}


def test_products_map_to_pools_and_tiers_to_priorities() -> None:
    settings = Settings()
    assert settings.pool_for_product("chat") == "chat"
    assert settings.pool_for_product("unknown") == "chat"
    access = settings.access
    assert access is not None
    assert [access.tier(t).priority for t in ("pro", "plus", "free")] == [1, 2, 3]
    assert access.tier("mystery").priority == 3


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown pools"):
        Settings(product_pools={"chat": "nowhere"})
    with pytest.raises(ValidationError, match="auto_size"):
        ModelCatalogEntry(sizes=[64], auto_size=512)


def test_tiers_come_from_a_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = Settings()
    assert set(shipped.tiers) >= {"free", "plus", "pro"}
    assert shipped.tiers["free"].over_budget == "defer"
    assert shipped.tiers["free"].degraded is not None
    assert set(shipped.access.features) == {"generate", "edit"}  # type: ignore[union-attr]
    path = tmp_path / "tiers.toml"
    path.write_text(
        '[tiers.gold]\npriority = 1\nrequests = "5/second"\n'
        '[tiers.free]\npriority = 4\nover_budget = "reject"\n'
    )
    monkeypatch.setenv("DAGUERRE_TIERS_FILE", str(path))
    custom = Settings()
    assert set(custom.tiers) == {"gold", "free"}
    assert custom.access is not None
    assert custom.access.tier("gold").priority == 1
    assert custom.access.tier("mystery").priority == 4  # the lowest tier's terms
    path.write_text('[tiers.free]\nrequests = "lots"\n')
    with pytest.raises(ValidationError, match="rate limit"):
        Settings()


def test_rollout_buckets_are_stable_and_nested() -> None:
    from daguerre.access import FeatureSettings, feature_allows, rollout_bucket

    ids = [f"acct_{i}" for i in range(200)]
    assert [rollout_bucket("edit", i) for i in ids] == [rollout_bucket("edit", i) for i in ids]
    inside = {
        p: {i for i in ids if feature_allows("edit", FeatureSettings(percent=p), "free", i)}
        for p in (10, 50, 90)
    }
    assert inside[10] <= inside[50] <= inside[90]
    assert 60 <= len(inside[50]) <= 140
    assert not feature_allows("edit", FeatureSettings(enabled=False), "free", ids[0])
    assert not feature_allows("edit", FeatureSettings(tiers=["pro"]), "free", ids[0])


def test_a_tier_rolls_in_at_its_own_share_while_the_others_keep_the_flags() -> None:
    from daguerre.access import FeatureSettings, feature_allows, rollout_bucket

    ids = [f"acct_{i}" for i in range(200)]
    flag = FeatureSettings(percent=100, tier_percent={"free": 10})
    free = {i for i in ids if feature_allows("generate", flag, "free", i)}
    assert free == {i for i in ids if rollout_bucket("generate", i) < 10}
    assert all(feature_allows("generate", flag, "pro", i) for i in ids)  # paid keep it
    assert flag.percent_for("plus") == 100 and flag.percent_for("free") == 10
    with pytest.raises(ValueError, match="less than or equal to 100"):
        FeatureSettings(tier_percent={"free": 150})
