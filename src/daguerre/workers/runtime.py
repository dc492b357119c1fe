"""The model runtime: one model per worker process, loaded once, driven by the engine.

Model calls are CPU (or GPU) bound and the backends are synchronous, so they run in one
thread of their own while the event loop keeps heartbeating and writing; one thread,
because the engine steps every render in one batch and a model is not thread-safe.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from PIL import Image

from daguerre.config import Settings
from daguerre.domain import JobSpec
from daguerre.models.base import ImageModel, RenderRequest
from daguerre.models.registry import create_model

T = TypeVar("T")


def load_plugins(modules: list[str]) -> None:
    """Import modules that register extra backends (e.g. a test model) in the registry."""
    for name in modules:
        importlib.import_module(name)


class ModelRuntime:
    def __init__(self, model: ImageModel, name: str) -> None:
        self.model = model
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    @classmethod
    def load(cls, settings: Settings) -> ModelRuntime:
        load_plugins(settings.model_plugins)
        model = create_model(settings.model, **settings.model_options)
        model.setup(settings.device)
        return cls(model, settings.model)

    def requests_for(
        self,
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
            )
            for index in range(spec.n)
        ]

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
