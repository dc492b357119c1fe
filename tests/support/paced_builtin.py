"""The built-in model, slowed down: each forward pass takes at least ``step_delay_s``.

Importing this module (DAGUERRE_MODEL_PLUGINS) makes backend "builtin" take a
``step_delay_s`` option (DAGUERRE_MODEL_OPTIONS='{"step_delay_s": 0.05}'), so that an
end-to-end test with the real model can watch its progress, pause it or kill it mid-
render. Images are the shipped model's own; only time passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from daguerre.models.base import RenderState
from daguerre.models.builtin.backend import BuiltinModel
from daguerre.models.registry import BACKENDS


class PacedBuiltin(BuiltinModel):
    def __init__(self, step_delay_s: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        self.step_delay_s = step_delay_s

    def step_many(self, states: Sequence[RenderState]) -> list[RenderState]:
        started = time.monotonic()
        out = super().step_many(states)
        time.sleep(max(0.0, self.step_delay_s - (time.monotonic() - started)))
        return out


BACKENDS["builtin"] = PacedBuiltin
