"""One request's images in progress (``Generation``), and the cache layout every row shares.

A ``Generation`` holds its conditioning, the tokens drawn so far and the key/value cache
that produced them. Its randomness is drawn per image from its own seed up front (two
uniforms per token), and every row of a kind has the same cache layout (phrase slots,
then target slots, then for edits source slots), so attention has the same shape alone
or batched; slots not yet written are masked out. ``prepare`` computes the prefix caches
of the generations that join a batch at once, in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from daguerre.models.builtin.model import MAX_PHRASES, PatchTokenNet
from daguerre.models.builtin.text import encode_text
from daguerre.models.builtin.tokens import N_TOKENS

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
    temperature: float | None = None  # None: the sampler's own (redraws sample more freely)


Cache = list[tuple[torch.Tensor, torch.Tensor]]


class Generation:
    """One request's images in progress. Its per-image tensors have one row per image;
    its cache is its own while it is not in an arena, and the arena's rows while it is.

    The cache of its prefix (the prompt's phrases, and an edit's source) is computed at
    its first step, together with those of every other generation starting then
    (``prepare``): one pass for all the requests that join a batch at once."""

    def __init__(self, words: Sequence[str], items: list[Conditioning], temperature: float) -> None:
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
        self.temperature = torch.tensor(
            [temperature if c.temperature is None else c.temperature for c in items],
            dtype=torch.float32,
        )
        self.words = torch.from_numpy(np.stack([encode_text(c.prompt, words) for c in items]))
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
    # Each target position's aligned source, built as training builds it.
    aligned = net.aligned_source(source, has_source if edit else None)
    if not edit:
        aligned = aligned.expand(rows, N_TOKENS, -1).clone()
    start = 0
    for gen in generations:
        part = slice(start, start + len(gen))
        gen.valid, gen.aligned = slot_valid[part].clone(), aligned[part].clone()
        gen.cache = [(k[part].clone(), v[part].clone()) for k, v in cache]
        start = part.stop
