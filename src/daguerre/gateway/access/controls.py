"""The operators' live overrides on top of the configured tiers and flags.

Every gateway keeps a copy and reads the database's ``controls`` table again every
``controls_refresh_s``: a change made through any replica (or the CLI) applies
everywhere within about a second, with no restart and no message bus.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Literal

from pydantic import ValidationError

from daguerre.access import AccessConfig, FeatureSettings, TierSettings, merged
from daguerre.config import Settings
from daguerre.store import ControlStore
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)

DegradedMode = Literal["auto", "on", "off"]


def tier_key(name: str) -> str:
    return f"tier:{name}"


def feature_key(name: str) -> str:
    return f"feature:{name}"


def degraded_key(pool: str) -> str:
    return f"degraded:{pool}"


def pace_key(pool: str) -> str:
    return f"pace:{pool}"


class LiveControls:
    def __init__(self, settings: Settings, store: ControlStore) -> None:
        assert settings.access is not None
        self._base: AccessConfig = settings.access
        self._pools = settings.pools
        self._store = store
        self._interval = settings.controls_refresh_s
        self.overrides: dict[str, Any] = {}
        self.access: AccessConfig = self._base
        # Read and apply as one step: otherwise the background refresh could apply a
        # snapshot read just before an admin's change, after that change was applied.
        self._lock = threading.Lock()

    # --- reading ------------------------------------------------------------------------
    def tier(self, name: str) -> TierSettings:
        """The tier as it is now, operators' changes included (see AccessConfig.tier)."""
        return self.access.tier(name)

    def feature(self, name: str) -> FeatureSettings | None:
        return self.access.features.get(name)

    def degraded_mode(self, pool: str) -> DegradedMode:
        value = self.overrides.get(degraded_key(pool))
        return value if value in ("on", "off") else "auto"

    def admit_pace(self, pool: str) -> float:
        """The pool's admission pace (0: none): the operator's, else the configured."""
        value = self.overrides.get(pace_key(pool))
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        return self._pools[pool].admit_pace

    # --- changing -----------------------------------------------------------------------
    def put(self, key: str, value: Any) -> None:
        """Store an operator's override; it applies here at once, and on every other
        gateway at its next refresh."""
        self._store.put(key, value)
        self.refresh()

    def reset(self, key: str) -> None:
        """Drop an operator's override: back to the configuration."""
        self._store.delete(key)
        self.refresh()

    # --- refreshing ---------------------------------------------------------------------
    def apply(self, overrides: dict[str, Any]) -> None:
        """Rebuild the effective configuration; a bad stored override is skipped (and
        logged), never allowed to take the gateway down."""
        tiers = dict(self._base.tiers)
        features = dict(self._base.features)
        for key, value in overrides.items():
            kind, _, name = key.partition(":")
            try:
                if kind == "tier":
                    tiers[name] = merged(tiers.get(name, TierSettings()), value)
                elif kind == "feature":
                    features[name] = merged(features.get(name, FeatureSettings()), value)
            except (ValidationError, TypeError) as err:
                log.warning("ignoring the override %s=%r: %s", key, value, err)
        self.overrides = overrides
        self.access = AccessConfig(tiers=tiers, features=features)

    def refresh(self) -> None:
        with self._lock:
            self.apply(self._store.all())

    async def run(self) -> None:
        while True:
            try:
                await run_blocking(self.refresh)
            except Exception:  # a database hiccup: keep the last known controls
                log.warning("could not refresh the live controls", exc_info=True)
            await asyncio.sleep(self._interval)
