"""A tiny deterministic model that implements the protocol, for tests.

Importing this module registers it as backend "fake" in the model registry, which is
how a worker process picks it up: DAGUERRE_MODEL=fake and
DAGUERRE_MODEL_PLUGINS=tests.support.fake_model.

Prompts steer failures: "fail:input" is rejected by start() (a ModelInputError) and
"fail:crash" raises on every step (a retryable error).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

from daguerre.models.base import ModelInputError, RenderRequest, RenderResult
from daguerre.models.registry import BACKENDS

NATIVE = 64


def colour(prompt: str, seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


@dataclass(frozen=True)
class FakeState:
    step: int
    total_steps: int
    colours: tuple[tuple[int, int, int], ...]
    crash: bool = False


class FakeModel:
    name = "fake"
    can_edit = False
    native_size = NATIVE

    def __init__(self, steps: int = 8) -> None:
        self.default_steps = steps
        self.ready = False

    def setup(self, device: str = "cpu") -> None:
        self.ready = True

    def start(self, requests: list[RenderRequest]) -> FakeState:
        assert self.ready, "setup() was not called"
        if any("fail:input" in r.prompt for r in requests):
            raise ModelInputError("the fake model refuses this prompt")
        steps = requests[0].steps or self.default_steps
        colours = tuple(colour(r.prompt, r.seed) for r in requests)
        return FakeState(0, steps, colours, crash=any("fail:crash" in r.prompt for r in requests))

    def step(self, state: FakeState) -> FakeState:  # type: ignore[override]
        if state.crash:
            raise RuntimeError("the fake model crashed")
        return replace(state, step=state.step + 1)

    def _draw(self, rgb: tuple[int, int, int], fraction: float) -> Image.Image:
        faded = tuple(int(c * fraction) for c in rgb)
        image = Image.new("RGB", (NATIVE, NATIVE), faded)
        ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill=(255, 255, 255))
        return image

    def preview(self, state: FakeState, index: int) -> Image.Image | None:
        return self._draw(state.colours[index], state.step / state.total_steps)

    def finish(self, state: FakeState) -> list[RenderResult]:
        return [
            RenderResult(self._draw(rgb, 1.0), encoding=json.dumps(rgb).encode())
            for rgb in state.colours
        ]

    def save_state(self, state: FakeState) -> bytes:
        return json.dumps(
            {
                "step": state.step,
                "total": state.total_steps,
                "colours": state.colours,
                "crash": state.crash,
            }
        ).encode()

    def load_state(self, data: bytes, requests: list[RenderRequest]) -> FakeState:
        raw = json.loads(data)
        colours = tuple(tuple(c) for c in raw["colours"])
        return FakeState(raw["step"], raw["total"], colours, raw["crash"])  # type: ignore[arg-type]


BACKENDS["fake"] = FakeModel
