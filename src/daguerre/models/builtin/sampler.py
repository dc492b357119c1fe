"""Sampling the built-in model token by token, with a key/value cache.

Randomness is drawn per image from its own seed up front (two uniforms per token), so
an image does not depend on what else shares its batch, and a resumed run draws
exactly what the uninterrupted run would have drawn. Resuming replays the saved
tokens through the same one-position-at-a-time path that produced them, which
rebuilds the cache bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from daguerre.models.builtin.data import encode_text
from daguerre.models.builtin.model import Block, PatchTokenNet
from daguerre.models.builtin.tokens import N_TOKENS, Tokenizer

DEFAULT_TEMPERATURE = 0.3


@dataclass
class Conditioning:
    """What one image is conditioned on: the prompt, and for an edit the source tokens."""

    prompt: str
    seed: int
    source: np.ndarray | None = None  # (64, 2) tokens
    keep: np.ndarray | None = None  # (64,) bool: positions forced to the source (masked edits)


class Generation:
    """A batch in progress: tokens so far plus the cache that produced them."""

    def __init__(self, sampler: Sampler, items: list[Conditioning]) -> None:
        net = sampler.net
        self.sampler = sampler
        self.items = items
        b = len(items)
        self.tokens = torch.zeros(b, N_TOKENS, 2, dtype=torch.long)
        self.position = 0
        words = torch.from_numpy(np.stack([encode_text(c.prompt, sampler.words) for c in items]))
        has_source = torch.tensor([c.source is not None for c in items])
        self.has_source = has_source
        source = None
        if bool(has_source.any()):
            source = torch.zeros(b, N_TOKENS, 2, dtype=torch.long)
            for i, c in enumerate(items):
                if c.source is not None:
                    source[i] = torch.from_numpy(c.source.astype(np.int64))
        self.source = source
        self.keep = torch.zeros(b, N_TOKENS, dtype=torch.bool)
        for i, c in enumerate(items):
            if c.keep is not None and c.source is not None:
                self.keep[i] = torch.from_numpy(c.keep)
        self.uniforms = torch.stack(
            [
                torch.rand(N_TOKENS, 2, generator=torch.Generator().manual_seed(c.seed))
                for c in items
            ]
        )
        with torch.inference_mode():
            prefix, valid = net.prefix(words, source)
            if source is not None:
                # Rows without a source see no source keys (exactly as in text-only training).
                valid[:, -N_TOKENS:] &= has_source[:, None]
            self.n_prefix = prefix.shape[1]
            total = self.n_prefix + N_TOKENS
            heads, hd = net.cfg.heads, net.cfg.d // net.cfg.heads
            self.cache = [
                (torch.zeros(b, heads, total, hd), torch.zeros(b, heads, total, hd))
                for _ in net.blocks
            ]
            self.key_mask = torch.cat([valid, torch.ones(b, N_TOKENS, dtype=torch.bool)], 1)[
                :, None, None, :
            ]
            x = prefix
            mask = PatchTokenNet.attention_mask(valid, 0)
            for block, (keys, values) in zip(net.blocks, self.cache, strict=True):
                x, k, v = block(x, mask)
                keys[:, :, : self.n_prefix] = k
                values[:, :, : self.n_prefix] = v
            if source is not None:
                aligned = net.embed_tokens(source, aligned=True)
                self.aligned = torch.where(has_source[:, None, None], aligned, net.no_source)
            else:
                self.aligned = net.no_source.expand(b, N_TOKENS, -1)

    def _inputs(self, i: int) -> torch.Tensor:
        net = self.sampler.net
        b = len(self.items)
        prev = net.bos.expand(b, 1, -1) if i == 0 else net.embed_tokens(self.tokens[:, i - 1 : i])
        return prev + net.pos[i] + net.kind[2] + self.aligned[:, i : i + 1]

    def _hidden(self, i: int) -> torch.Tensor:
        net = self.sampler.net
        x = self._inputs(i)
        for block, (keys, values) in zip(self.sampler.layers, self.cache, strict=True):
            x = block.step(x, keys, values, self.n_prefix + i, self.key_mask)
        return net.ln(x[:, 0])

    @torch.inference_mode()
    def advance(self, count: int) -> None:
        """Sample the next ``count`` tokens for the whole batch."""
        net, s = self.sampler.net, self.sampler
        for _ in range(count):
            i = self.position
            if i >= N_TOKENS:
                return
            h = self._hidden(i)
            keep = self.keep[:, i]
            pattern = s.sample(net.pattern_logits(h), self.uniforms[:, i, 0])
            if self.source is not None:
                pattern = torch.where(keep, self.source[:, i, 0], pattern)
            colour_logits = net.colour_logits(h, pattern)
            colour_logits = colour_logits.masked_fill(
                ~s.valid_colours[s.n_slots[pattern]], float("-inf")
            )
            colour = s.sample(colour_logits, self.uniforms[:, i, 1])
            if self.source is not None:
                colour = torch.where(keep, self.source[:, i, 1], colour)
            self.tokens[:, i, 0] = pattern
            self.tokens[:, i, 1] = colour
            self.position += 1

    @torch.inference_mode()
    def replay(self, tokens: torch.Tensor, position: int) -> None:
        """Feed already-sampled tokens back through the cache (resume), sampling nothing."""
        for i in range(position):
            self._hidden(i)
            self.tokens[:, i] = tokens[:, i]
            self.position = i + 1


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
        self.layers: list[Block] = [b for b in net.blocks if isinstance(b, Block)]

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

    def generate(self, items: list[Conditioning]) -> np.ndarray:
        """(B, 64, 2) tokens for a whole batch in one go."""
        gen = self.start(items)
        gen.advance(N_TOKENS)
        return gen.tokens.numpy()
