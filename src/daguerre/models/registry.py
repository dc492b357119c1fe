"""Chooses a backend by name. Backends are imported lazily so that torch-free
callers (and optional extras such as diffusers) pay only for what they use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daguerre.models.base import ImageModel

# Note: this module may import daguerre.models.* only (models imports nothing else of ours).


def _builtin(**options: Any) -> ImageModel:
    from daguerre.models.builtin.backend import BuiltinModel

    return BuiltinModel(**options)


def _diffusers(**options: Any) -> ImageModel:
    from daguerre.models.diffusers import DiffusersModel

    return DiffusersModel(**options)


BACKENDS: dict[str, Callable[..., ImageModel]] = {
    "builtin": _builtin,
    "diffusers": _diffusers,
}


def create_model(name: str, **options: Any) -> ImageModel:
    """Build (but do not set up) the backend called ``name``."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown model backend {name!r}; known backends: {known}") from None
    return factory(**options)
