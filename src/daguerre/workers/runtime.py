"""The model a worker's engine runs, and the requests a job asks it for.

``load_model`` runs in the engine process (workers/engine_client.py), which is the only
one to import torch; ``requests_for`` is what a render activity hands the engine.
"""

from __future__ import annotations

import importlib

from PIL import Image

from daguerre.config import Settings
from daguerre.domain import JobSpec, resolved_quality
from daguerre.models.base import ImageModel, RenderRequest
from daguerre.models.registry import create_model


def load_plugins(modules: list[str]) -> None:
    """Import modules that register extra backends (e.g. a test model) in the registry."""
    for name in modules:
        importlib.import_module(name)


def load_model(settings: Settings) -> ImageModel:
    """The configured backend, with its weights loaded (``setup``)."""
    load_plugins(settings.model_plugins)
    model = create_model(settings.model, **settings.model_options)
    model.setup(settings.device)
    return model


def requests_for(
    spec: JobSpec,
    source: Image.Image | None = None,
    mask: Image.Image | None = None,
    source_encoding: bytes | None = None,
) -> list[RenderRequest]:
    """One request per image of the job; seeds differ so the n images differ. An edit
    gives every request the same source, mask and encoding (see EditInputs)."""
    return [
        RenderRequest(
            prompt=spec.prompt,
            seed=spec.seed + index,
            steps=spec.steps,
            width=spec.width,
            height=spec.height,
            source=source,
            mask=mask,
            source_encoding=source_encoding,
            quality=resolved_quality(spec.quality),
        )
        for index in range(spec.n)
    ]
