"""Rows of many generations side by side, so that one forward pass serves them all.

The arena keeps, for every row (one image), its key/value cache and what a token step
reads: the position it has reached, its aligned source embeddings, its uniforms and
its forced source tokens. A token step runs over rows ``[0, width)`` at once.

Generations come and go between calls (continuous batching): ``run`` is given the
generations to advance, evicts the ones that are no longer among them (copying an
unfinished one's cache back out, so that it can resume later), admits the new ones
into the lowest free rows, and moves rows down from the top when holes would cost
more than they save. Rows that hold nobody are still computed (their results are
ignored), which is also how a pass is kept at ``MIN_ROWS`` rows or more.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from daguerre.models.builtin.generation import (
    MIN_ROWS,
    TARGETS_AT,
    Generation,
    cache_slots,
    prepare,
)
from daguerre.models.builtin.model import Block, PatchTokenNet
from daguerre.models.builtin.tokens import N_TOKENS


class Drawer(Protocol):
    """What an arena needs of its sampler: the network, and how tokens are drawn."""

    net: PatchTokenNet
    valid_colours: torch.Tensor  # by slot count: the colour classes a pattern may take
    n_slots: torch.Tensor  # colour slots of each pattern

    def sample(
        self, logits: torch.Tensor, uniforms: torch.Tensor, temperature: torch.Tensor
    ) -> torch.Tensor: ...


class Arena:
    # Per row (see _grow): each layer's keys and values, which cache slots a row
    # attends to, its aligned source embeddings, uniforms, sampling temperature, forced
    # source tokens and which of them to force (masked edits), its tokens and position.
    cache: list[tuple[torch.Tensor, torch.Tensor]]
    valid: torch.Tensor
    aligned: torch.Tensor
    uniforms: torch.Tensor
    temperature: torch.Tensor
    source: torch.Tensor
    keep: torch.Tensor
    tokens: torch.Tensor
    pos: torch.Tensor

    def __init__(self, sampler: Drawer, edit: bool, capacity: int = MIN_ROWS) -> None:
        self.sampler = sampler
        self.edit = edit
        self.slots = cache_slots(edit)
        self.capacity = 0
        self.owners: list[Generation | None] = []
        self.resident: list[Generation] = []
        self.high = 0  # rows [high, capacity) have never been used since the last compaction
        self.blocks = [_Weights(b) for b in sampler.net.blocks if isinstance(b, Block)]
        self._grow(max(capacity, MIN_ROWS))

    # --- rows --------------------------------------------------------------------------
    def _grow(self, capacity: int) -> None:
        """Reallocate every per-row tensor with room for ``capacity`` rows, keeping the
        rows in use."""
        net = self.sampler.net
        heads, hd, d = net.cfg.heads, net.cfg.d // net.cfg.heads, net.cfg.d
        keep = self.high

        def grown(old: torch.Tensor | None, *shape: int, dtype: torch.dtype) -> torch.Tensor:
            fresh = torch.zeros(capacity, *shape, dtype=dtype)
            if old is not None and keep:
                fresh[:keep] = old[:keep]
            return fresh

        first = self.capacity == 0
        f32, i64, flag = torch.float32, torch.long, torch.bool
        self.cache = [
            (
                grown(None if first else self.cache[i][0], heads, self.slots, hd, dtype=f32),
                grown(None if first else self.cache[i][1], heads, self.slots, hd, dtype=f32),
            )
            for i in range(len(self.blocks))
        ]
        self.valid = grown(None if first else self.valid, self.slots, dtype=flag)
        self.aligned = grown(None if first else self.aligned, N_TOKENS, d, dtype=f32)
        self.uniforms = grown(None if first else self.uniforms, N_TOKENS, 2, dtype=f32)
        self.temperature = grown(None if first else self.temperature, dtype=f32)
        self.source = grown(None if first else self.source, N_TOKENS, 2, dtype=i64)
        self.keep = grown(None if first else self.keep, N_TOKENS, dtype=flag)
        self.tokens = grown(None if first else self.tokens, N_TOKENS, 2, dtype=i64)
        self.pos = grown(None if first else self.pos, dtype=i64)
        self.owners += [None] * (capacity - self.capacity)
        self.capacity = capacity

    @property
    def width(self) -> int:
        """Rows a token step computes."""
        return max(self.high, MIN_ROWS)

    def _free_rows(self, count: int) -> list[int]:
        free = [r for r in range(self.high) if self.owners[r] is None][:count]
        while len(free) < count:
            if self.high == self.capacity:
                self._grow(self.capacity * 2)
            free.append(self.high)
            self.high += 1
        return free

    def _admit(self, gen: Generation) -> None:
        assert gen.cache is not None and gen.valid is not None and gen.aligned is not None
        rows = torch.tensor(self._free_rows(len(gen)), dtype=torch.long)
        for (keys, values), (own_k, own_v) in zip(self.cache, gen.cache, strict=True):
            keys[rows], values[rows] = own_k, own_v
        self.valid[rows] = gen.valid
        self.aligned[rows] = gen.aligned
        self.uniforms[rows] = gen.uniforms
        self.temperature[rows] = gen.temperature
        self.source[rows] = gen.source
        self.keep[rows] = gen.keep
        self.tokens[rows] = gen.tokens
        self.pos[rows] = gen.position
        for r in rows.tolist():
            self.owners[r] = gen
        gen.rows, gen.cache = rows, None
        self.resident.append(gen)

    def release(self, gen: Generation) -> None:
        """Take ``gen`` out. An unfinished one gets its cache back, to resume from later."""
        rows = gen.rows
        if rows is None or gen not in self.resident:
            return
        if gen.position < N_TOKENS:
            gen.cache = [(keys[rows].clone(), values[rows].clone()) for keys, values in self.cache]
            gen.valid = self.valid[rows].clone()
        for r in rows.tolist():
            self.owners[r] = None
        self.pos[rows] = 0  # a free row steps at slot 0 of its own cache: harmless
        gen.rows = None
        self.resident.remove(gen)
        while self.high and self.owners[self.high - 1] is None:
            self.high -= 1

    def _move(self, source: int, target: int) -> None:
        for keys, values in self.cache:
            keys[target], values[target] = keys[source], values[source]
        for tensor in (
            self.valid,
            self.aligned,
            self.uniforms,
            self.temperature,
            self.source,
            self.keep,
            self.tokens,
            self.pos,
        ):
            tensor[target] = tensor[source]
        gen = self.owners[source]
        assert gen is not None and gen.rows is not None
        gen.rows[gen.rows == source] = target
        self.owners[target], self.owners[source] = gen, None
        self.pos[source] = 0

    def _compact(self) -> None:
        """Fill holes from the top while they are more than a quarter of the width: a
        moved row costs one copy, a hole costs its share of every pass."""
        used = sum(len(g) for g in self.resident)
        while self.high - used > max(MIN_ROWS, used // 4):
            hole = next(r for r in range(self.high) if self.owners[r] is None)
            top = self.high - 1
            if self.owners[top] is not None:
                self._move(top, hole)
            self.high -= 1
            while self.high and self.owners[self.high - 1] is None:
                self.high -= 1

    def hold(self, generations: list[Generation]) -> None:
        """Make ``generations`` exactly the arena's residents."""
        wanted = set(map(id, generations))
        for gen in [g for g in self.resident if id(g) not in wanted]:
            self.release(gen)
        prepare(self.sampler.net, [g for g in generations if not g.prepared])
        for gen in generations:
            if gen.rows is None:
                self._admit(gen)
        self._compact()

    # --- token steps -------------------------------------------------------------------
    def run(self, generations: list[Generation], count: int) -> None:
        """Advance each of ``generations`` by ``count`` sampled tokens."""
        self.hold(generations)
        live = self._live()
        for _ in range(count):
            self._step(live, None)
        self._write_back(generations)

    def replay(self, gen: Generation, tokens: torch.Tensor, position: int) -> None:
        """Advance ``gen`` (alone in this arena) through ``tokens[:, :position]`` again."""
        self.hold([gen])
        rows = gen.rows
        assert rows is not None
        live = self._live()
        for i in range(position):
            forced = torch.zeros(self.width, 2, dtype=torch.long)
            forced[rows] = tokens[:, i]
            self._step(live, forced)
        self._write_back([gen])

    def _live(self) -> torch.Tensor:
        """Which rows of a pass hold an image (the rest are computed and ignored)."""
        return torch.tensor([o is not None for o in self.owners[: self.width]], dtype=torch.bool)

    def _write_back(self, generations: list[Generation]) -> None:
        for gen in generations:
            assert gen.rows is not None
            gen.tokens = self.tokens[gen.rows].clone()
            gen.position = int(self.pos[gen.rows[0]])

    @torch.inference_mode()
    def _step(self, live: torch.Tensor, forced: torch.Tensor | None) -> None:
        """One token for every row in ``[0, width)``: sampled, or ``forced`` (replay).
        Only ``live`` rows keep what the step wrote."""
        s, net = self.sampler, self.sampler.net
        width = self.width
        rows = torch.arange(width)
        # A finished image sits at position 64 until it leaves; it steps at 63, ignored.
        live = live & (self.pos[:width] < N_TOKENS)
        pos = self.pos[:width].clamp(max=N_TOKENS - 1)
        previous = net.embed_tokens(self.tokens[rows, (pos - 1).clamp(min=0)][:, None])
        first = (pos == 0)[:, None, None]
        x = torch.where(first, net.bos.expand(width, 1, -1), previous)
        x = net.decoder_inputs(x, pos[:, None], self.aligned[rows, pos][:, None])
        slot = TARGETS_AT + pos
        # Each row sees its valid slots and its own target slot (written just below).
        valid = self.valid[:width]
        valid[rows, slot] = True
        # Unwritten and other rows' slots get -inf: one additive mask for all six layers.
        bias = torch.zeros(valid.shape).masked_fill(~valid, float("-inf"))[:, None, None, :]
        for block, (keys, values) in zip(self.blocks, self.cache, strict=True):
            x = _block_step(block, x, keys[:width], values[:width], rows, slot, bias)
        h = net.ln(x[:, 0])
        keep, source = self.keep[rows, pos], self.source[rows, pos]
        if forced is None:
            temperature = self.temperature[:width]
            pattern = s.sample(net.pattern_logits(h), self.uniforms[rows, pos, 0], temperature)
            pattern = torch.where(keep, source[:, 0], pattern)
            colour_logits = net.colour_logits(h, pattern)
            colour_logits = colour_logits.masked_fill(
                ~s.valid_colours[s.n_slots[pattern]], float("-inf")
            )
            colour = s.sample(colour_logits, self.uniforms[rows, pos, 1], temperature)
            colour = torch.where(keep, source[:, 1], colour)
        else:
            pattern, colour = forced[:, 0], forced[:, 1]
        self.tokens[rows[live], pos[live], 0] = pattern[live]
        self.tokens[rows[live], pos[live], 1] = colour[live]
        self.pos[:width] += live.long()


Affine = tuple[torch.Tensor, torch.Tensor]  # a linear layer's weight and bias


def _affine(layer: torch.nn.Module) -> Affine:
    assert isinstance(layer, torch.nn.Linear) and layer.bias is not None
    return layer.weight, layer.bias


class _Weights:
    """One block's parameters, read once: a token step calls the functional ops on them
    directly, as the modules' own forwards do (the same kernels, so the same bits),
    without a module call's overhead. At a few rows a pass is mostly such overhead: one
    image took 15% less time this way (bench/model.py)."""

    def __init__(self, block: Block) -> None:
        ln1, ln2 = block.ln1, block.ln2
        self.ln1 = (ln1.normalized_shape, ln1.weight, ln1.bias, ln1.eps)
        self.ln2 = (ln2.normalized_shape, ln2.weight, ln2.bias, ln2.eps)
        self.qkv, self.proj = _affine(block.attn.qkv), _affine(block.attn.proj)
        up, gelu, down = block.mlp
        assert isinstance(gelu, torch.nn.GELU)
        self.up, self.down = _affine(up), _affine(down)
        self.approximate = gelu.approximate
        self.heads = block.attn.heads


def _block_step(
    w: _Weights,
    x: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    rows: torch.Tensor,
    slot: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """One new position per row: its key/value goes to the row's own ``slot``, and it
    attends over the whole (masked) cache, so the shape never depends on the position.
    The same operations as ``Block.step``, in the same order.

    Attention is written out rather than ``scaled_dot_product_attention``: for one query
    per row over the cache, its CPU kernel took 1.64 ms a call at 128 rows against 0.72 ms
    for these three products (bench/model.py: about a third of a batched step), and each
    row is still computed on its own, so a row's result does not depend on its batch."""
    b, t, d = x.shape
    h = F.layer_norm(x, *w.ln1)
    qkv = F.linear(h, *w.qkv).view(b, t, 3, w.heads, d // w.heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    keys[rows, :, slot] = k[:, :, 0]
    values[rows, :, slot] = v[:, :, 0]
    scores = torch.matmul(q, keys.transpose(-1, -2)) * (q.shape[-1] ** -0.5) + bias
    y = torch.matmul(torch.softmax(scores, dim=-1), values)
    x = x + F.linear(y.transpose(1, 2).reshape(b, t, d), *w.proj)
    h = F.gelu(F.linear(F.layer_norm(x, *w.ln2), *w.up), approximate=w.approximate)
    return x + F.linear(h, *w.down)
