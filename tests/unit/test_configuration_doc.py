"""docs/configuration.md is generated from the settings models; this keeps it in step.

When it fails, regenerate the page from the repository root with
``python -m daguerre.config.docs`` and commit the result.
"""

from __future__ import annotations

from daguerre.access import FeatureSettings, RenderDefaults, TierSettings
from daguerre.config import ModelCatalogEntry, PoolSettings, Settings
from daguerre.config.docs import render
from tests.support.stack import REPO


def test_the_committed_page_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/configuration.md is stale: run `python -m daguerre.config.docs` from the "
        "repository root"
    )


def test_every_setting_says_what_it_is() -> None:
    models = (
        Settings,
        PoolSettings,
        ModelCatalogEntry,
        TierSettings,
        RenderDefaults,
        FeatureSettings,
    )
    undocumented = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert not undocumented, f"fields with no Field(description=...): {undocumented}"


def test_the_page_names_every_environment_variable() -> None:
    page = render()
    missing = [name for name in Settings.model_fields if f"`DAGUERRE_{name.upper()}`" not in page]
    assert not missing
