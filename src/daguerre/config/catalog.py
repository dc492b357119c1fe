"""The model catalog: what the gateway may accept for each model, as data.

The gateway validates sizes and step counts against this without importing any model (and
so without torch); the workers check the same limits again when they render.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

# The most steps any request may ask for, whatever the model.
MAX_STEPS = 1000
# The steps each shipped backend takes, as data (the gateway imports no model): the
# built-in model reveals its 64 tokens in at most 64 steps (models/builtin/backend.py
# refuses more); a diffusers scheduler takes any count, and past 150 nothing improves.
STEP_RANGES: dict[str, tuple[int, int]] = {"builtin": (1, 64), "diffusers": (1, 150)}
# OpenAI's image model names, aliases of the served model by default (runtime.py), so
# that a client written for OpenAI changes only its base URL.
OPENAI_MODEL_NAMES = (
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
    "gpt-image-2",
    "chatgpt-image-latest",
    "dall-e-2",
    "dall-e-3",
)
# Any size by OpenAI's current rule (gateway/services/catalog_checks.py): both sides
# multiples of 16, the longer at most three times the shorter, and the frame within
# 3840x2160 either way up.
SIZE_MULTIPLE = 16
MAX_ASPECT = 3
MAX_FRAME = (3840, 2160)
# Backends whose pictures have a flat background, which a transparent request keys out
# (workers/imaging.py): the built-in model's backgrounds are colours no object takes. A
# diffusers picture has no such background, so the gateway refuses `transparent` for it.
TRANSPARENT_BACKENDS = frozenset({"builtin"})


class ModelCatalogEntry(BaseModel):
    """What the gateway may accept for one model, without importing the model.

    Keeping this as data lets the gateway validate requests with no torch.
    """

    sizes: list[int] = Field(
        default_factory=lambda: [64, 128, 256, 512, 1024],
        description="The square edge lengths, in pixels, a request may ask for.",
    )
    auto_size: int = Field(default=512, description='What `size="auto"` means; one of sizes.')
    # The gateway refuses other step counts with a 400 rather than accept a job the model
    # would fail.
    steps: tuple[int, int] | None = Field(
        default=None,
        description="The `steps` a request may ask for, [least, most]. None: the backend's "
        "own range when the entry is named after it (builtin 1..64, diffusers 1..150), "
        "else 1..1000.",
    )

    edit_images: int = Field(
        default=1,
        ge=1,
        description="Images one edit may give the model; more are a 400 that says so.",
    )
    transparent: bool | None = Field(
        default=None,
        description='Whether `background="transparent"` is served. None: the backend\'s own '
        "answer when the entry is named after it (builtin yes, diffusers no), else no.",
    )

    @model_validator(mode="after")
    def _auto_is_supported(self) -> ModelCatalogEntry:
        if self.auto_size not in self.sizes:
            raise ValueError(f"auto_size {self.auto_size} is not one of sizes {self.sizes}")
        if self.steps is not None and not 1 <= self.steps[0] <= self.steps[1]:
            raise ValueError(f"steps {list(self.steps)} is not a range [least, most] from 1")
        return self

    def step_range(self, model: str) -> tuple[int, int]:
        """The steps ``model`` (this entry's name in the catalog) takes."""
        return self.steps or STEP_RANGES.get(model, (1, MAX_STEPS))

    def draws_transparent(self, model: str) -> bool:
        """Whether ``model`` (this entry's name in the catalog) serves transparent
        backgrounds."""
        if self.transparent is not None:
            return self.transparent
        return model in TRANSPARENT_BACKENDS

    def size_names(self) -> list[str]:
        return ["auto", *(f"{s}x{s}" for s in self.sizes)]
