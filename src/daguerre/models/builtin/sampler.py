"""Sampling the built-in model token by token, many generations in one forward pass.

A ``Generation`` (generation.py) is one request's images in progress: its conditioning,
the tokens drawn so far and the key/value cache that produced them. To run, generations sit
side by side as rows of an ``Arena`` (see arena.py), and every token step is one forward pass
over all its rows, whatever position each row has reached: this is how the worker
batches independent requests that joined at different times (continuous batching).

An image never depends on what shares its forward pass:

- randomness is drawn per image from its own seed up front (two uniforms per token);
- every row of a kind has the same cache layout (phrase slots, then target slots, then
  for edits source slots), so attention has the same shape alone or batched, and
  slots not yet written are masked out. Text-only and edit rows run in two arenas:
  most requests are text-only, and their attention then skips 64 source slots;
- a pass always has at least ``MIN_ROWS`` rows: CPU matrix kernels take another code
  path for one to three rows, whose sums round differently (measured here: rows of
  ``nn.Linear`` are bit-identical for any batch of four or more on one thread, and
  differ for one to three). Spare rows are computed and ignored.

Resuming replays the saved tokens through the same pass that produced them, which
rebuilds the cache bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from daguerre.models.builtin.arena import Arena
from daguerre.models.builtin.generation import MIN_ROWS, Conditioning, Generation
from daguerre.models.builtin.model import PatchTokenNet
from daguerre.models.builtin.tokens import N_TOKENS, Tokenizer

DEFAULT_TEMPERATURE = 0.3


class Sampler:
    def __init__(
        self,
        net: PatchTokenNet,
        tokenizer: Tokenizer,
        words: tuple[str, ...],
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> None:
        self.net = net
        self.tokenizer = tokenizer
        self.words = words
        self.temperature = temperature
        self.valid_colours = torch.from_numpy(tokenizer.valid_colour_classes())
        self.n_slots = torch.from_numpy(tokenizer.n_slots)
        # The rows every generation of this sampler runs in: text-only, and edits.
        self.arenas = {False: Arena(self, edit=False), True: Arena(self, edit=True)}

    def sample(
        self, logits: torch.Tensor, uniforms: torch.Tensor, temperature: torch.Tensor
    ) -> torch.Tensor:
        """Inverse-CDF sampling, one uniform and one temperature per row (a temperature of
        0 or less picks the most likely token). Dividing by a per-row temperature gives
        the same bits as dividing by the same number as a scalar, so a row samples alike
        whatever temperatures the rows beside it have."""
        greedy = temperature <= 0
        probs = torch.softmax(logits.float() / temperature.clamp(min=1e-6)[:, None], -1)
        cdf = probs.cumsum(-1)
        idx = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
        idx = idx.clamp(max=logits.shape[-1] - 1)
        return torch.where(greedy, logits.argmax(-1), idx) if bool(greedy.any()) else idx

    def start(self, items: list[Conditioning]) -> Generation:
        return Generation(self.words, items, self.temperature)

    def advance(self, generations: list[Generation], count: int) -> None:
        """Sample the next ``count`` tokens of every generation, in shared passes (one
        per token for each kind of row there is)."""
        for edit, arena in self.arenas.items():
            group = [g for g in generations if g.edit == edit]
            if group:
                arena.run(group, count)

    def release(self, generation: Generation) -> None:
        """Free a generation's rows now rather than at its arena's next run."""
        self.arenas[generation.edit].release(generation)

    def replay(self, generation: Generation, tokens: torch.Tensor, position: int) -> None:
        """Feed already-sampled tokens back through the cache (resume), sampling nothing.
        It runs in an arena of its own, so the shared one is left as it is."""
        private = Arena(self, generation.edit, capacity=max(MIN_ROWS, len(generation)))
        private.replay(generation, tokens, position)
        private.release(generation)

    def generate(self, items: list[Conditioning]) -> np.ndarray:
        """(B, 64, 2) tokens for a whole batch in one go, drawn in an arena of their own:
        the shared arenas, and the generations they hold mid-render, are left as they are
        (a render resumed at its last step redraws its misses this way, backend.finish)."""
        generation = self.start(items)
        private = Arena(self, generation.edit, capacity=max(MIN_ROWS, len(generation)))
        private.run([generation], N_TOKENS)
        private.release(generation)
        return generation.tokens.numpy()
