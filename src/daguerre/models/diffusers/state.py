"""What a render in progress holds: one ``Item`` per request, gathered in a ``DiffusersState``.

Each request owns its scheduler and generator, rather than the batch sharing one as
diffusers does: requests in one batch may ask for different step counts and sizes;
stochastic schedulers (ancestral, SDE, DDIM with eta, LCM) draw noise from the generator
on every step, so a request's image would otherwise depend on its neighbours; and a
request's resume state is then simply its own scheduler's attributes. Owning them is also
what lets requests join and leave a running batch at any step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from daguerre.models.base import RenderState


@dataclass
class Item:
    """One request's share of a batch: its latents, conditioning, scheduler and RNG."""

    key: str
    out_size: tuple[int, int]  # (width, height) the caller asked for
    latents: torch.Tensor  # (1, C, h, w) at the render size
    cond: torch.Tensor  # (1, seq, dim) prompt embeddings
    uncond: torch.Tensor | None  # empty-prompt embeddings; None when no CFG
    cond_added: dict[str, torch.Tensor]  # SDXL pooled embeddings and time ids
    uncond_added: dict[str, torch.Tensor]
    guidance_scale: float
    scheduler: Any
    generator: torch.Generator
    num_steps: int  # len(scheduler.timesteps): more than the step count for PNDM/Heun
    x0: torch.Tensor | None = None  # the scheduler's latest clean-image estimate


@dataclass
class DiffusersState:
    """Progress of a batch. ``step`` counts loop iterations done, out of ``total_steps``."""

    step: int
    total_steps: int
    items: list[Item] = field(default_factory=list)


def check_state(state: RenderState) -> DiffusersState:
    if not isinstance(state, DiffusersState):
        raise TypeError(f"expected a DiffusersState, got {type(state).__name__}")
    return state


def batch_key(item: Item) -> tuple[Any, ...]:
    """What must match for requests to share a UNet batch: the latent shape (the render
    size), the prompt embedding's shape, and the added conditioning (SDXL's pooled
    embedding and time ids), which the UNet takes for every row or for none."""
    return (
        tuple(item.latents.shape),
        tuple(item.cond.shape),
        tuple(sorted((name, tuple(value.shape)) for name, value in item.cond_added.items())),
    )


def state_bytes(state: DiffusersState) -> int:
    """Bytes of the tensors the state holds: latents, clean estimates, prompt embeddings
    and each scheduler's own tensors (its tables and, for multistep solvers, its history
    of model outputs). Memory shared between them (``x0`` is often the scheduler's latest
    model output) is counted once."""
    seen: dict[tuple[str, int], int] = {}
    for item in state.items:
        scheduler_attrs = {
            name: value
            for name, value in vars(item.scheduler).items()
            if name != "_internal_dict"  # its config: plain Python values
        }
        _count_storage(
            [
                item.latents,
                item.x0,
                item.cond,
                item.uncond,
                item.cond_added,
                item.uncond_added,
                scheduler_attrs,
            ],
            seen,
        )
    return sum(seen.values())


def _count_storage(value: Any, seen: dict[tuple[str, int], int]) -> None:
    """Record in ``seen`` the memory behind every tensor and array inside ``value``,
    keyed by where it lives, so memory reached twice is counted once."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        # The whole storage: a view keeps all of it alive.
        seen[(str(value.device), storage.data_ptr())] = storage.nbytes()
    elif isinstance(value, np.ndarray):
        base = value.base if isinstance(value.base, np.ndarray) else value
        seen[("numpy", base.__array_interface__["data"][0])] = base.nbytes
    elif isinstance(value, (list, tuple)):
        for part in value:
            _count_storage(part, seen)
    elif isinstance(value, dict):
        for part in value.values():
            _count_storage(part, seen)
