"""The built-in model's network: phrase tokens in, patch tokens out, top to bottom.

- Each phrase of the prompt (split at ',', 'and', 'with') becomes one token from a
  small bidirectional encoder, mean-pooled. One token per object phrase binds colour,
  shape and position together, which is what keeps colours at the right places.
- A causal transformer then writes the 64 patch tokens of the image behind that
  prefix. For an edit the prefix also holds the 64 source tokens, and each target
  position is additionally given the source token *at the same place*: copying an
  unchanged patch is trivial, and the network only has to learn what changes.
- Each patch token is factored into a pattern (which slot each pixel takes) and the
  colours of its slots; the colour head sees the chosen pattern.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from daguerre.models.builtin.tokens import N_COLOUR_CLASSES, N_COLOURS, N_TOKENS

MAX_PHRASES = 6
MAX_WORDS = 12


@dataclass
class NetConfig:
    n_patterns: int
    n_words: int
    d: int = 128
    layers: int = 6
    heads: int = 4
    text_layers: int = 2

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        b, h, t, hd = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, t, h * hd))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Whole sequence at once; returns the output and this layer's keys and values."""
        q, k, v = self.attn.split(self.ln1(x))
        x = x + self.attn.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        return x + self.mlp(self.ln2(x)), k, v

    def step(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        length: int,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """One new position; appends its key/value to the preallocated cache at ``length``."""
        q, k, v = self.attn.split(self.ln1(x))
        keys[:, :, length : length + 1] = k
        values[:, :, length : length + 1] = v
        y = F.scaled_dot_product_attention(
            q,
            keys[:, :, : length + 1],
            values[:, :, : length + 1],
            attn_mask=mask[..., : length + 1],
        )
        x = x + self.attn.merge(y)
        return x + self.mlp(self.ln2(x))


class PhraseEncoder(nn.Module):
    """Words of one phrase -> one vector (bidirectional attention, mean over real words)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(cfg.n_words, cfg.d, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(MAX_WORDS, cfg.d))
        self.blocks = nn.ModuleList(Block(cfg.d, cfg.heads) for _ in range(cfg.text_layers))
        self.ln = nn.LayerNorm(cfg.d)

    def forward(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P, W) word ids (0 = pad) -> (B, P, d) phrase vectors and (B, P) validity."""
        b, p, w = words.shape
        flat = words.view(b * p, w)
        real = flat > 0
        x = self.words(flat) + self.pos[:w]
        # Padding phrases have no real word; let them attend to themselves to avoid NaNs.
        keys = real | ~real.any(1, keepdim=True)
        mask = keys[:, None, None, :]
        for block in self.blocks:
            x, _, _ = block(x, mask)
        x = self.ln(x)
        weights = real.float().unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return pooled.view(b, p, -1), real.any(1).view(b, p)


class PatchTokenNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d
        self.text = PhraseEncoder(cfg)
        # Token embeddings: pattern plus one table per colour slot (factored, 10 = 9 + none).
        self.pattern_emb = nn.Embedding(cfg.n_patterns, d)
        self.colour_emb = nn.ModuleList(nn.Embedding(N_COLOURS + 1, d) for _ in range(3))
        # The aligned source token is a separate input from the previous output token.
        self.align_pattern = nn.Embedding(cfg.n_patterns, d)
        self.align_colour = nn.ModuleList(nn.Embedding(N_COLOURS + 1, d) for _ in range(3))
        self.no_source = nn.Parameter(torch.zeros(d))
        self.bos = nn.Parameter(torch.zeros(d))
        self.pos = nn.Parameter(torch.randn(N_TOKENS, d) * 0.02)
        self.kind = nn.Parameter(torch.randn(3, d) * 0.02)  # phrase / source / target
        self.blocks = nn.ModuleList(Block(d, cfg.heads) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(d)
        self.pattern_head = nn.Linear(d, cfg.n_patterns)
        self.pattern_cond = nn.Embedding(cfg.n_patterns, d)
        self.colour_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, N_COLOUR_CLASSES))

    # -- embeddings -------------------------------------------------------------

    @staticmethod
    def _split_colours(cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = N_COLOURS + 1
        return cls // (n * n), (cls // n) % n, cls % n

    def embed_tokens(self, tokens: torch.Tensor, aligned: bool = False) -> torch.Tensor:
        pat, col = (
            (self.align_pattern, self.align_colour)
            if aligned
            else (self.pattern_emb, self.colour_emb)
        )
        c = self._split_colours(tokens[..., 1])
        return pat(tokens[..., 0]) + col[0](c[0]) + col[1](c[1]) + col[2](c[2])

    def prefix(
        self, words: torch.Tensor, source: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning sequence and its validity: phrase tokens, then source tokens."""
        phrases, valid = self.text(words)
        x = phrases + self.kind[0]
        if source is None:
            return x, valid
        src = self.embed_tokens(source) + self.pos + self.kind[1]
        ones = torch.ones(source.shape[:2], dtype=torch.bool, device=source.device)
        return torch.cat([x, src], 1), torch.cat([valid, ones], 1)

    def aligned_source(
        self, source: torch.Tensor | None, has_source: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What each target position is given of the source image: the embedding of the
        source token at the same place, or ``no_source`` (for a text-only batch, or for
        the rows where ``has_source`` is False)."""
        if source is None:
            return self.no_source
        aligned = self.embed_tokens(source, aligned=True)
        if has_source is None:
            return aligned
        return torch.where(has_source[:, None, None], aligned, self.no_source)

    def decoder_inputs(
        self, previous: torch.Tensor, positions: slice | torch.Tensor, aligned: torch.Tensor
    ) -> torch.Tensor:
        """The decoder's inputs at target ``positions``: the embedded previous output
        (``bos`` at position 0), the position, the target kind and the aligned source.

        Training (``forward``, every position at once) and sampling (the arena, one
        position per row) both build their inputs here, in this order of additions, so
        the two cannot drift apart (train/serve skew) and agree bit for bit."""
        return previous + self.pos[positions] + self.kind[2] + aligned

    # -- heads ------------------------------------------------------------------

    def pattern_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.pattern_head(h)

    def colour_logits(self, h: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
        return self.colour_head(h + self.pattern_cond(pattern))

    # -- training ---------------------------------------------------------------

    def forward(
        self, words: torch.Tensor, source: torch.Tensor | None, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits at every target position: (B, 64, P), (B, 64, colours)."""
        pre, valid = self.prefix(words, source)
        b, n_pre = valid.shape
        shifted = torch.cat([self.bos.expand(b, 1, -1), self.embed_tokens(target[:, :-1])], 1)
        targets = self.decoder_inputs(shifted, slice(0, N_TOKENS), self.aligned_source(source))
        x = torch.cat([pre, targets], 1)
        mask = self.attention_mask(valid, N_TOKENS)
        for block in self.blocks:
            x, _, _ = block(x, mask)
        h = self.ln(x[:, n_pre:])
        return self.pattern_logits(h), self.colour_logits(h, target[..., 0])

    @staticmethod
    def attention_mask(valid: torch.Tensor, n_target: int) -> torch.Tensor:
        """(B, 1, T, T) bool: the prefix sees the valid prefix; targets also see earlier targets."""
        b, n_pre = valid.shape
        t = n_pre + n_target
        causal = torch.ones(t, t, dtype=torch.bool, device=valid.device).tril()
        causal[:, :n_pre] = True
        causal[:n_pre, n_pre:] = False
        keys = torch.cat([valid, torch.ones(b, n_target, dtype=torch.bool, device=valid.device)], 1)
        mask = causal[None] & keys[:, None, :]
        # A prefix row whose keys are all padding would be NaN; it is never read, so it
        # may see itself.
        mask |= torch.eye(t, dtype=torch.bool, device=valid.device)[None]
        return mask[:, None]
