"""The backend's options, checked when it is built.

Only checked, not acted on: the registry builds backends on machines (an API server)
that may have neither the weights nor diffusers installed. Options may arrive as strings
from settings or the environment, hence the conversions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@dataclass(frozen=True)
class Options:
    """Validated options; ``DiffusersModel`` documents each one."""

    path: Path
    dtype: str | None
    steps: int | None
    guidance_scale: float | None
    scheduler: str | None
    eta: float
    variant: str | None
    max_side: int | None
    batch_images: int


def parse_options(
    path: str | Path | None,
    *,
    dtype: str | None,
    steps: int | None,
    guidance_scale: float | None,
    scheduler: str | None,
    eta: float,
    variant: str | None,
    max_side: int | None,
    batch_images: int,
) -> Options:
    """Check and convert the options, naming the first one that is wrong."""
    if path is None or str(path).strip() == "":
        raise ValueError(
            "the diffusers backend needs a path option: a local folder saved with "
            "DiffusionPipeline.save_pretrained (it contains model_index.json)"
        )
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    default_steps = None if steps is None else int(steps)
    if default_steps is not None and default_steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    side = None if max_side is None else int(max_side)
    if side is not None and side < 8:
        raise ValueError(f"max_side must be at least 8, got {max_side!r}")
    budget = int(batch_images)
    if budget < 1:
        raise ValueError(f"batch_images must be at least 1, got {batch_images!r}")
    return Options(
        path=Path(path).expanduser(),
        dtype=dtype,
        steps=default_steps,
        guidance_scale=None if guidance_scale is None else float(guidance_scale),
        scheduler=scheduler,
        eta=float(eta),
        variant=variant,
        max_side=side,
        batch_images=budget,
    )
