"""A tiny deterministic model that implements the protocol, for tests.

Importing this module registers it as backend "fake" in the model registry, which is
how a worker process picks it up: DAGUERRE_MODEL=fake and
DAGUERRE_MODEL_PLUGINS=tests.support.fake_model.

Prompts steer failures: "fail:input" is rejected by start() (a ModelInputError) and
"fail:crash" raises on every step (a retryable error).

``step_delay_s`` (a model option: DAGUERRE_MODEL_OPTIONS='{"step_delay_s": 0.05}') makes
each pass take that long, alone or batched, like an accelerator with room to spare: it
is how tests and benches slow renders down enough to watch, pause or kill them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
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
    batch_images = 64

    def __init__(self, steps: int = 8, step_delay_s: float = 0.0) -> None:
        self.default_steps = steps
        self.step_delay_s = step_delay_s
        self.ready = False
        self.passes = 0  # forward passes run: a test can tell batched from one by one

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
        return self.step_many([state])[0]

    def step_many(self, states: Sequence[FakeState]) -> list[FakeState]:  # type: ignore[override]
        todo = [s for s in states if s.step < s.total_steps]
        if not todo:
            return list(states)
        self.passes += 1
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        if any(s.crash for s in todo):
            raise RuntimeError("the fake model crashed")
        return [replace(s, step=s.step + 1) if s.step < s.total_steps else s for s in states]

    def state_bytes(self, state: FakeState) -> int:  # type: ignore[override]
        return 64 * len(state.colours)

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
