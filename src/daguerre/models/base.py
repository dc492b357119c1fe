"""The one protocol every image model backend implements.

Rendering is a stepwise loop: ``start`` builds the state of one request (its ``n``
images), ``step`` advances it by one step, and the state after any step can be turned
into bytes and resumed. The worker drives the loop so that it can heartbeat,
checkpoint and emit previews between steps (the way a diffusers denoising loop is kept
visible rather than hidden in one call).

``step_many`` is the same loop for many independent requests at once: the worker's
engine keeps every render it holds in one running set and advances the whole set in
shared forward passes, whatever step each render has reached (continuous batching,
workers/engine.py). A backend must give each request the same result batched as alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image


class ModelInputError(ValueError):
    """A request the model cannot serve (for example an edit on a text-only model)."""


@dataclass
class RenderRequest:
    """One image to render.

    ``source`` and ``mask`` make it an edit. The mask follows OpenAI's meaning:
    pixels whose alpha is 0 are the area that may change; it has the source's size.
    ``source_tokens`` lets a backend skip re-encoding an image it made itself.
    ``quality`` (low, medium or high) is what the backend may spend on the image: the
    built-in model checks and redraws a miss more or less (none at low), a diffusers
    pipeline takes fewer or more steps when ``steps`` is not given.
    """

    prompt: str
    seed: int = 0
    steps: int | None = None
    width: int = 64
    height: int = 64
    source: Image.Image | None = None
    mask: Image.Image | None = None
    source_encoding: bytes | None = None
    quality: str = "medium"

    @property
    def is_edit(self) -> bool:
        return self.source is not None or self.source_encoding is not None


@dataclass
class RenderResult:
    """A finished image, plus the backend's own encoding of it for later edits.

    ``revised_prompt`` is the prompt as the backend understood it (OpenAI's field of
    that name), or None when the backend has no reading of its own to offer.
    """

    image: Image.Image
    encoding: bytes | None = None
    revised_prompt: str | None = None


@runtime_checkable
class RenderState(Protocol):
    """Opaque, backend-specific progress of a batch. ``step`` counts completed steps."""

    step: int
    total_steps: int


@runtime_checkable
class ImageModel(Protocol):
    """A backend. ``setup`` loads weights once; the rest is the render loop.

    ``batch_images`` is the batch (in images) where the backend's throughput stops
    growing on the hardware it was measured on: the default batch budget of a pool.
    """

    name: str
    can_edit: bool
    native_size: int
    batch_images: int

    def setup(self, device: str = "cpu") -> None: ...

    def start(self, requests: list[RenderRequest]) -> RenderState: ...

    def step(self, state: RenderState) -> RenderState: ...

    def step_many(self, states: Sequence[RenderState]) -> list[RenderState]:
        """Advance independent states together, in shared forward passes where they can
        share one; returns them in order (a backend may update them in place). Each
        state moves towards its next step boundary; a backend may stop short of it for
        some (their ``step`` is then unchanged) so that states at different phases share
        passes, but every unfinished state makes progress. Finished states are left as
        they are. Each state's result must not depend on what it was batched with."""
        ...

    def state_bytes(self, state: RenderState) -> int:
        """Memory the state holds: what pausing it in memory costs (the worker writes
        paused states out as checkpoints past a budget of these)."""
        ...

    def preview(self, state: RenderState, index: int) -> Image.Image | None:
        """The current estimate of image ``index`` of the batch, or None if there is none."""
        ...

    def finish(self, state: RenderState) -> list[RenderResult]: ...

    def save_state(self, state: RenderState) -> bytes: ...

    def load_state(self, data: bytes, requests: list[RenderRequest]) -> RenderState:
        """Resume from ``save_state`` bytes; ``requests`` are the same as passed to ``start``."""
        ...


def step_each(model: ImageModel, states: Sequence[RenderState]) -> list[RenderState]:
    """``step_many`` for a backend that cannot share a pass between requests."""
    return [model.step(s) if s.step < s.total_steps else s for s in states]


def render(model: ImageModel, requests: list[RenderRequest]) -> list[RenderResult]:
    """Run the whole loop with no checkpoints: the simple path for CLIs and tests."""
    state = model.start(requests)
    while state.step < state.total_steps:
        state = model.step(state)
    return model.finish(state)
