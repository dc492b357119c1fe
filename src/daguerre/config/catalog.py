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

    def size_names(self) -> list[str]:
        return ["auto", *(f"{s}x{s}" for s in self.sizes)]
