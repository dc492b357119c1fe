"""One place for every setting, grouped by concern.

Each setting can be set from the environment as ``DAGUERRE_<NAME>``, structured ones as JSON
(a JSON value replaces the whole default), e.g.
``DAGUERRE_POOLS='{"chat": {}, "api": {"batch_images": 32}}'``. Every setting has a default
that works on a laptop with nothing else installed (`daguerre up`).

- settings.py: `Settings`, assembled from the sections;
- runtime.py: places, gateway, progress, engine, worker, models and launcher sections;
- object_store.py: the object-store section (blobs in an S3-compatible bucket);
- policy.py: pools and products, access, and webhooks sections;
- pools.py: one pool's settings (routing, admission, worker sizing, launch);
- catalog.py: the model catalog the gateway validates requests against;
- docs.py: renders docs/configuration.md from all of the above.
"""

from daguerre.config.catalog import MAX_STEPS, STEP_RANGES, ModelCatalogEntry
from daguerre.config.pools import PoolSettings
from daguerre.config.settings import Settings

__all__ = ["MAX_STEPS", "STEP_RANGES", "ModelCatalogEntry", "PoolSettings", "Settings"]
