"""`Settings`: every section, assembled into the one object the code reads.

The sections (runtime.py, policy.py) are mixins, so the environment stays flat
(``DAGUERRE_HOST``, not a nested name) and ``settings.<field>`` works everywhere; what is
left here is what spans sections: the checks that tie pools, products and tiers together,
and the values derived from several fields.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from daguerre.access import TierSettings, load_access
from daguerre.config.moderation import ModerationSection
from daguerre.config.object_store import ObjectStoreSection
from daguerre.config.policy import AccessSection, PoolsSection, WebhooksSection
from daguerre.config.provenance import ProvenanceSection
from daguerre.config.runtime import (
    EngineSection,
    GatewaySection,
    LauncherSection,
    ModelsSection,
    PlacesSection,
    ProgressSection,
    WorkerSection,
)
from daguerre.config.tracing import TracingSection


class Settings(  # BaseSettings last: its configuration (env parsing) wins
    PlacesSection,
    ObjectStoreSection,
    GatewaySection,
    ProgressSection,
    EngineSection,
    WorkerSection,
    ModelsSection,
    PoolsSection,
    AccessSection,
    WebhooksSection,
    ModerationSection,
    ProvenanceSection,
    TracingSection,
    LauncherSection,
    BaseSettings,
):
    """Every setting, from ``DAGUERRE_<NAME>`` environment variables (structured ones as
    JSON, which replaces the whole default); each has a default that works on a laptop."""

    model_config = SettingsConfigDict(
        env_prefix="DAGUERRE_",
        extra="ignore",
    )

    @model_validator(mode="after")
    def _pools_exist(self) -> Settings:
        for name, pool in self.pools.items():
            if not pool.task_queue:
                pool.task_queue = f"daguerre-{name}"
        unknown = {p for p in self.product_pools.values() if p not in self.pools}
        if unknown:
            raise ValueError(f"product_pools names unknown pools {sorted(unknown)}")
        if not self.pools:
            raise ValueError("at least one pool is needed")
        if self.access is None:
            self.access = load_access(self.tiers_file)
        if not self.access.tiers:
            raise ValueError("at least one tier is needed")
        return self

    # --- derived ------------------------------------------------------------------------
    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'daguerre.db').resolve()}"

    @cached_property
    def blobs_path(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    def pool_for_product(self, product: str) -> str:
        """The pool serving ``product``; unknown products share the first pool."""
        return self.product_pools.get(product) or next(iter(self.pools))

    @property
    def tiers(self) -> dict[str, TierSettings]:
        assert self.access is not None  # filled in by the validator
        return self.access.tiers


# In the order docs/configuration.md lists them: the order of Settings' bases.
SECTIONS: tuple[type[BaseModel], ...] = tuple(
    base for base in Settings.__bases__ if base is not BaseSettings
)
