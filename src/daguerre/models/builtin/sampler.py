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
    its cache is its own while it is not in an arena, and the arena's rows while it is.

    The cache of its prefix (the prompt's phrases, and an edit's source) is computed at
    its first step, together with those of every other generation starting then
    (``prepare``): one pass for all the requests that join a batch at once."""

    def __init__(self, sampler: Sampler, items: list[Conditioning]) -> None:
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
        self.words = torch.from_numpy(
            np.stack([encode_text(c.prompt, sampler.words) for c in items])
        )
        # Edit rows (and rows batched with them) need source slots; see cache_slots.
        self.edit = bool(self.has_source.any())
        # Set by prepare(): which cache slots hold a key to attend to, the cache, and the
        # aligned source embeddings of each target position.
        self.valid: torch.Tensor | None = None
        self.cache: Cache | None = None
        self.aligned: torch.Tensor | None = None
        # Set while the generation sits in an arena (see arena.py).
        self.rows: torch.Tensor | None = None

    @property
    def prepared(self) -> bool:
        return self.valid is not None

    def __len__(self) -> int:
        return len(self.items)


@torch.inference_mode()
def prepare(net: PatchTokenNet, generations: list[Generation]) -> None:
    """Compute the prefix caches of ``generations`` (all of one kind: text-only or edit)
    in one pass. Every row of the pass is independent of the others, and each has at
    least six rows, so a generation's cache is the same whatever it is prepared with."""
    if not generations:
        return
    edit = generations[0].edit
    assert all(g.edit == edit for g in generations), "one kind of generation at a time"
    words = torch.cat([g.words for g in generations])
    source = torch.cat([g.source for g in generations]) if edit else None
    has_source = torch.cat([g.has_source for g in generations])
    prefix, valid = net.prefix(words, source)
    if edit:
        # Rows without a source see no source keys (exactly as in text-only training).
        valid[:, MAX_PHRASES:] &= has_source[:, None]
    rows = valid.shape[0]
    slots = cache_slots(edit)
    heads, hd = net.cfg.heads, net.cfg.d // net.cfg.heads
    # Which cache slots hold a key to attend to, before any target is written.
    slot_valid = torch.zeros(rows, slots, dtype=torch.bool)
    slot_valid[:, :MAX_PHRASES] = valid[:, :MAX_PHRASES]
    slot_valid[:, SOURCE_AT:] = valid[:, MAX_PHRASES:]
    cache: Cache = []
    x, mask = prefix, PatchTokenNet.attention_mask(valid, 0)
    for block in net.blocks:
        x, k, v = block(x, mask)
        keys, values = torch.zeros(rows, heads, slots, hd), torch.zeros(rows, heads, slots, hd)
        keys[:, :, :MAX_PHRASES], values[:, :, :MAX_PHRASES] = (
            k[:, :, :MAX_PHRASES],
            v[:, :, :MAX_PHRASES],
        )
        keys[:, :, SOURCE_AT:], values[:, :, SOURCE_AT:] = (
            k[:, :, MAX_PHRASES:],
            v[:, :, MAX_PHRASES:],
        )
        cache.append((keys, values))
    if edit:
        aligned = net.embed_tokens(source, aligned=True)  # type: ignore[arg-type]
        aligned = torch.where(has_source[:, None, None], aligned, net.no_source)
    else:
        aligned = net.no_source.expand(rows, N_TOKENS, -1).clone()
    start = 0
    for gen in generations:
        part = slice(start, start + len(gen))
        gen.valid, gen.aligned = slot_valid[part].clone(), aligned[part].clone()
        gen.cache = [(k[part].clone(), v[part].clone()) for k, v in cache]
        start = part.stop


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
