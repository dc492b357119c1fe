"""Sampling the built-in model token by token, many generations in one forward pass.

A ``Generation`` is one request's images in progress: its conditioning, the tokens
drawn so far and the key/value cache that produced them. To run, generations sit side
by side as rows of an ``Arena`` (see arena.py), and every token step is one forward pass
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

from dataclasses import dataclass

import numpy as np
import torch

from daguerre.models.builtin.data import encode_text
from daguerre.models.builtin.model import MAX_PHRASES, PatchTokenNet
from daguerre.models.builtin.tokens import N_TOKENS, Tokenizer

DEFAULT_TEMPERATURE = 0.3
# Cache layout of every row: phrase tokens, the image's own tokens, and for edit rows
# the source image's tokens last. The network sees positions through embeddings, never
# through slots, so the layout is free to choose.
TARGETS_AT = MAX_PHRASES
SOURCE_AT = MAX_PHRASES + N_TOKENS


def cache_slots(edit: bool) -> int:
    return SOURCE_AT + (N_TOKENS if edit else 0)


# The fewest rows a forward pass runs with (see the module docstring).
MIN_ROWS = 4


@dataclass
class Conditioning:
    """What one image is conditioned on: the prompt, and for an edit the source tokens."""

    prompt: str
    seed: int
    source: np.ndarray | None = None  # (64, 2) tokens
    keep: np.ndarray | None = None  # (64,) bool: positions forced to the source (masked edits)


Cache = list[tuple[torch.Tensor, torch.Tensor]]


class Generation:
    """One request's images in progress. Its per-image tensors have one row per image;
    its cache is its own while it is not in an arena, and the arena's rows while it is."""

    def __init__(self, sampler: Sampler, items: list[Conditioning]) -> None:
        net = sampler.net
        self.items = items
        n = len(items)
        self.tokens = torch.zeros(n, N_TOKENS, 2, dtype=torch.long)
        self.position = 0
        self.has_source = torch.tensor([c.source is not None for c in items])
        self.source = torch.zeros(n, N_TOKENS, 2, dtype=torch.long)
        self.keep = torch.zeros(n, N_TOKENS, dtype=torch.bool)
        for i, c in enumerate(items):
            if c.source is not None:
                self.source[i] = torch.from_numpy(c.source.astype(np.int64))
                if c.keep is not None:
                    self.keep[i] = torch.from_numpy(c.keep)
        self.uniforms = torch.stack(
            [
                torch.rand(N_TOKENS, 2, generator=torch.Generator().manual_seed(c.seed))
                for c in items
            ]
        )
        words = torch.from_numpy(np.stack([encode_text(c.prompt, sampler.words) for c in items]))
        # Edit rows (and rows batched with them) need source slots; see cache_slots.
        self.edit = bool(self.has_source.any())
        slots = cache_slots(self.edit)
        with torch.inference_mode():
            prefix, valid = net.prefix(words, self.source if self.edit else None)
            if self.edit:
                # Rows without a source see no source keys (exactly as in text-only training).
                valid[:, MAX_PHRASES:] &= self.has_source[:, None]
            # Which cache slots hold a key to attend to, before any target is written.
            self.valid = torch.zeros(n, slots, dtype=torch.bool)
            self.valid[:, :MAX_PHRASES] = valid[:, :MAX_PHRASES]
            self.valid[:, SOURCE_AT:] = valid[:, MAX_PHRASES:]
            heads, hd = net.cfg.heads, net.cfg.d // net.cfg.heads
            self.cache: Cache | None = []
            x, mask = prefix, PatchTokenNet.attention_mask(valid, 0)
            for block in net.blocks:
                x, k, v = block(x, mask)
                keys, values = torch.zeros(n, heads, slots, hd), torch.zeros(n, heads, slots, hd)
                keys[:, :, :MAX_PHRASES], values[:, :, :MAX_PHRASES] = (
                    k[:, :, :MAX_PHRASES],
                    v[:, :, :MAX_PHRASES],
                )
                keys[:, :, SOURCE_AT:], values[:, :, SOURCE_AT:] = (
                    k[:, :, MAX_PHRASES:],
                    v[:, :, MAX_PHRASES:],
                )
                self.cache.append((keys, values))
            if self.edit:
                aligned = net.embed_tokens(self.source, aligned=True)
                self.aligned = torch.where(self.has_source[:, None, None], aligned, net.no_source)
            else:
                self.aligned = net.no_source.expand(n, N_TOKENS, -1).clone()
        # Set while the generation sits in an arena (see arena.py).
        self.rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.items)


class Sampler:
    def __init__(
        self,
        net: PatchTokenNet,
        tokenizer: Tokenizer,
        words: tuple[str, ...],
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> None:
        from daguerre.models.builtin.arena import Arena

        self.net = net
        self.tokenizer = tokenizer
        self.words = words
        self.temperature = temperature
        self.valid_colours = torch.from_numpy(tokenizer.valid_colour_classes())
        self.n_slots = torch.from_numpy(tokenizer.n_slots)
        # The rows every generation of this sampler runs in: text-only, and edits.
        self.arenas = {False: Arena(self, edit=False), True: Arena(self, edit=True)}

    def sample(self, logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF sampling at the sampler's temperature, one uniform per row."""
        if self.temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / self.temperature, -1)
        cdf = probs.cumsum(-1)
        idx = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
        return idx.clamp(max=logits.shape[-1] - 1)

    def start(self, items: list[Conditioning]) -> Generation:
        return Generation(self, items)

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
        from daguerre.models.builtin.arena import Arena

        private = Arena(self, generation.edit, capacity=max(MIN_ROWS, len(generation)))
        private.replay(generation, tokens, position)
        private.release(generation)

    def generate(self, items: list[Conditioning]) -> np.ndarray:
        """(B, 64, 2) tokens for a whole batch in one go."""
        generation = self.start(items)
        self.advance([generation], N_TOKENS)
        self.release(generation)
        return generation.tokens.numpy()
