"""The built-in model behind the ``ImageModel`` protocol.

One step writes a band of tokens (by default one row of eight patches, so eight
steps an image); previews show the rows written so far. Output sizes come from
nearest-neighbour upscaling of the native 64×64: the images are flat colour with
hard edges, which nearest-neighbour keeps exactly (no blur, no new colours).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.Image import Resampling

from daguerre.models.base import ModelInputError, RenderRequest, RenderResult, RenderState
from daguerre.models.builtin import weights
from daguerre.models.builtin.generation import Conditioning, Generation
from daguerre.models.builtin.sampler import DEFAULT_TEMPERATURE, Sampler
from daguerre.models.builtin.scene import PALETTE
from daguerre.models.builtin.tokens import (
    N_TOKENS,
    NATIVE,
    Tokenizer,
    patches_touched,
    quantise,
)
from daguerre.models.builtin.understanding import (
    Reading,
    canonical_indices,
    describe,
    read_indices_scene,
    read_instruction,
    read_prompt,
    read_source,
)
from daguerre.models.builtin.verify import DEFAULT_RETRIES, Outcome, Redraws, retries_for, verify

# A request renders the same bits batched or alone only if every matrix product of its
# rows is computed the same way whatever the batch's row count. MKL's AVX-512 kernels
# pick their blocking by row count (cache floats differ by ~1e-6, so a token can flip on
# a sampling boundary); its AVX2 kernels do not, and measured no slower here (105 against
# 103 images/s at a batch of 128). MKL reads this at its first call, so it is set on
# import, before any product; an operator's own value wins.
os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")

DEFAULT_STEPS = 8
STATE_VERSION = 1
PALETTE_BYTES = PALETTE.astype(np.uint8).ravel().tolist()


@dataclass
class BuiltinState:
    """A request's render. Its last step is counted only once its images pass their
    check (verify.py): while misses are redrawn (``redraw``, a generation of its own in
    the shared batch), ``step`` stays one short of ``total_steps``."""

    step: int
    total_steps: int
    generation: Generation
    requests: list[RenderRequest]
    readings: list[Reading]
    redraws: Redraws
    redraw: Generation | None = None
    settled: bool = False  # checked (and redrawn where needed) in the engine's loop


def _own(state: RenderState) -> BuiltinState:
    if not isinstance(state, BuiltinState):
        raise TypeError(f"not a built-in model state: {type(state).__name__}")
    return state


def _boundaries(total_steps: int) -> list[int]:
    """Token count reached after each step: 64 tokens split as evenly as possible."""
    return [round(N_TOKENS * (k + 1) / total_steps) for k in range(total_steps)]


def _target(state: BuiltinState, gen: Generation) -> int:
    """The token count ``gen`` (the request's images, or its redraws) is to reach next."""
    boundaries = _boundaries(state.total_steps)
    if gen is state.generation:
        return boundaries[state.step]
    return next(b for b in boundaries if b > gen.position)


def encode_tokens(tokens: np.ndarray) -> bytes:
    """An image's 64 tokens as bytes (what a later edit reuses instead of re-encoding pixels)."""
    return tokens.astype("<i2").tobytes()


def decode_tokens(data: bytes) -> np.ndarray:
    arr = np.frombuffer(data, dtype="<i2")
    if arr.size != N_TOKENS * 2:
        raise ModelInputError("source encoding is not a built-in model encoding")
    return arr.reshape(N_TOKENS, 2).astype(np.int64)


def editable_area(mask: Image.Image) -> np.ndarray:
    """(64, 64) bool: native pixels that may change. Transparent mask pixels (alpha 0) may change.

    A native pixel may change if any mask pixel over it is transparent, so the
    editable area is never smaller than the user's.
    """
    alpha = np.asarray(mask.convert("RGBA"))[..., 3] == 0
    h, w = alpha.shape
    ys = (np.arange(h) * NATIVE) // h
    xs = (np.arange(w) * NATIVE) // w
    out = np.zeros((NATIVE, NATIVE), bool)
    np.logical_or.at(out, (ys[:, None].repeat(w, 1), xs[None, :].repeat(h, 0)), alpha)
    return out


class BuiltinModel:
    """Daguerre's own CPU model (see docs/model.md)."""

    name = "builtin"
    can_edit = True
    native_size = NATIVE
    # Where throughput peaks on two shared cores (bench/model.py, one thread): about
    # 100-118 images/s at 128 against 85-111 at 64; a step of 128 takes ~135 ms.
    batch_images = 128
    # On a CPU a step's time grows with its batch: 16 images step in about twice the time
    # of one. A worker holds its batch to this while paid work runs (see config/pools.py).
    express_batch_images = 16

    def __init__(
        self,
        weights_path: str | Path | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        threads: int | None = 1,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        # One thread by default: the network is small, so a second thread buys little, and
        # on a shared or busy CPU two OpenMP threads stall each other badly (measured here:
        # 43 ms an image with one thread, seconds with two beside other processes).
        # ``threads=None`` leaves torch's own setting alone.
        self.weights_path = Path(weights_path) if weights_path else weights.SHIPPED
        self.temperature = temperature
        self.threads = threads
        # Redraws allowed per image whose check fails (verify.py); 0 turns checking off.
        self.retries = retries
        # Totals over every finished batch, for the evaluation and for operators.
        self.verified = Outcome()
        self._sampler: Sampler | None = None
        self.info: dict[str, object] = {}

    # -- set-up -----------------------------------------------------------------

    def setup(self, device: str = "cpu") -> None:
        if device != "cpu":
            raise ModelInputError("the built-in model runs on the CPU only")
        if self.threads:
            torch.set_num_threads(self.threads)
        net, patterns, words, info = weights.load(self.weights_path)
        self.info = info
        self._sampler = Sampler(net, Tokenizer(patterns), words, self.temperature)

    @property
    def sampler(self) -> Sampler:
        if self._sampler is None:
            raise RuntimeError("call setup() before rendering")
        return self._sampler

    # -- conditioning -----------------------------------------------------------

    def encode_image(self, image: Image.Image) -> np.ndarray:
        """Pixels -> (64, 2) tokens: nearest palette colour at native size, then patch tokens."""
        indices = quantise(np.asarray(image.convert("RGB")))
        return self.sampler.tokenizer.encode(indices[None])[0]

    def _source(self, req: RenderRequest) -> tuple[np.ndarray, Reading]:
        """An edit's source tokens, and how its instruction reads against the source.

        The model's own tokens (a stored encoding) are the fast path. An uploaded picture
        is read as a scene and drawn again by our renderer (understanding.py), so the
        model sees the kind of picture it was trained on; one that does not read as a
        scene of the world is encoded pixel by pixel, as before."""
        if req.source_encoding is not None:
            source = decode_tokens(req.source_encoding)
            scene = read_indices_scene(self.sampler.tokenizer.decode(source[None])[0])
            return source, read_instruction(req.prompt, scene)
        assert req.source is not None
        scene = read_source(req.source)
        if scene is None:
            source = self.encode_image(req.source)
        else:
            source = self.sampler.tokenizer.encode(canonical_indices(scene)[None])[0]
        return source, read_instruction(req.prompt, scene)

    def _conditioning(self, req: RenderRequest) -> tuple[Conditioning, Reading]:
        if not req.is_edit:
            return Conditioning(req.prompt, req.seed), read_prompt(req.prompt)
        source, reading = self._source(req)
        keep = None
        if reading.unchanged:
            keep = np.ones(N_TOKENS, bool)  # nothing to change: the render copies the source
        elif req.mask is not None:
            # A patch is regenerated if any of its pixels may change; the rest is copied.
            keep = ~patches_touched(editable_area(req.mask))
        elif reading.editable is not None:
            keep = ~reading.editable  # no mask given: the area the instruction concerns
        return Conditioning(req.prompt, req.seed, source, keep), reading

    # -- the loop ---------------------------------------------------------------

    def start(self, requests: list[RenderRequest]) -> BuiltinState:
        if not requests:
            raise ModelInputError("nothing to render")
        steps = requests[0].steps or DEFAULT_STEPS
        if not 1 <= steps <= N_TOKENS:
            raise ModelInputError(f"steps must be between 1 and {N_TOKENS} for the built-in model")
        items, readings = zip(*(self._conditioning(r) for r in requests), strict=True)
        generation = self.sampler.start(list(items))
        redraws = Redraws(readings, retries_for(requests[0].quality, self.retries))
        return BuiltinState(0, steps, generation, requests, list(readings), redraws)

    def step_many(self, states: Sequence[RenderState]) -> list[RenderState]:
        """Advance every state towards its next step in shared forward passes. All go
        as far as the nearest boundary among them: one whole step each when their steps
        are the same size (the usual case), part of one for those with longer steps.
        A request's redraws ride in the same passes, a band of tokens per call."""
        own = [_own(s) for s in states]
        todo = [s for s in own if s.step < s.total_steps]
        if todo:
            active = [s.redraw or s.generation for s in todo]
            targets = [_target(s, g) for s, g in zip(todo, active, strict=True)]
            # A state resumed from a checkpoint taken during its redraws holds all its
            # tokens already (and a finished generation has no cache to enter an arena
            # with): it only settles, so it takes no part in the passes.
            moving = [(g, t) for g, t in zip(active, targets, strict=True) if g.position < t]
            if moving:
                count = min(t - g.position for g, t in moving)
                self.sampler.advance([g for g, _ in moving], count)
            for state, gen, target in zip(todo, active, targets, strict=True):
                if gen.position < target:
                    continue
                if gen is state.generation and state.step < state.total_steps - 1:
                    state.step += 1
                elif gen.position >= N_TOKENS:
                    self._settle(state)
        return list(own)

    def _settle(self, state: BuiltinState) -> None:
        """Its images (or its latest redraws) are complete: check them, and either start
        the next redraw or count the last step."""
        decode = self.sampler.tokenizer.decode
        if state.redraw is None:
            state.redraws.first(state.generation.tokens.numpy(), decode)
        else:
            state.redraws.take(state.redraw.tokens.numpy(), decode)
            self.sampler.release(state.redraw)
            state.redraw = None
        again = state.redraws.next(state.generation.items)
        if again is not None:
            state.redraw = self.sampler.start(again)
            return
        state.settled = True
        state.step = state.total_steps
        self.verified.add(state.redraws.outcome)

    def step(self, state: RenderState) -> BuiltinState:
        state = _own(state)
        if state.step < state.total_steps:
            self.step_many([state])  # alone, the next boundary is its own
        return state

    def state_bytes(self, state: RenderState) -> int:
        """Its cache (wherever it lives now) and its tokens: those of its redraws while
        they run (its own images are complete then, and hold no cache)."""
        own = _own(state)
        gen = own.redraw or own.generation
        cache = self.sampler.arenas[gen.edit].cache
        per_row = sum(k[0].numel() * k.element_size() * 2 for k, _ in cache)
        return len(gen) * (per_row + gen.tokens[0].numel() * 8)

    def _indices(self, state: BuiltinState, index: int, upto: int) -> np.ndarray:
        tokens = state.generation.tokens[index].numpy().copy()
        if upto < N_TOKENS:
            if bool(state.generation.has_source[index]):
                # Edits: the source shows below the frontier.
                tokens[upto:] = state.generation.source[index, upto:].numpy()
            else:
                tokens[upto:] = tokens[0] if upto else (0, 0)
                tokens[upto:, 0] = 0  # a uniform patch of the first patch's main colour
        return self.sampler.tokenizer.decode(tokens[None])[0]

    def preview(self, state: RenderState, index: int) -> Image.Image | None:
        """The rows written so far at native size (edits show the source below them)."""
        state = _own(state)
        if state.generation.position == 0:
            return None
        return picture(self._indices(state, index, state.generation.position))

    def finish(self, state: RenderState) -> list[RenderResult]:
        state = _own(state)
        gen = state.generation
        if gen.position < N_TOKENS:
            raise RuntimeError("finish() before the last step")
        tokenizer = self.sampler.tokenizer
        if state.settled and state.redraws.tokens is not None:
            tokens = state.redraws.tokens
        else:  # resumed from a checkpoint of its last step: check and redraw here
            tokens, outcome = verify(
                gen.tokens.numpy(),
                gen.items,
                state.readings,
                tokenizer.decode,
                self.sampler.generate,
                retries_for(state.requests[0].quality, self.retries),
            )
            self.verified.add(outcome)
        return [
            self._result(req, reading, own, indices)
            for req, reading, own, indices in zip(
                state.requests, state.readings, tokens, tokenizer.decode(tokens), strict=True
            )
        ]

    def _result(
        self, req: RenderRequest, reading: Reading, tokens: np.ndarray, indices: np.ndarray
    ) -> RenderResult:
        if reading.unchanged and req.source is not None:
            # The user's own picture, not our redrawing of it: nothing was asked that applies.
            image = req.source.convert("RGB").resize((req.width, req.height), Resampling.NEAREST)
        else:  # the world is square: another frame is filled around it (workers/imaging.py)
            side = min(req.width, req.height)
            image = picture(indices).resize((side, side), Resampling.NEAREST)
        if req.mask is not None and req.source is not None:
            image = composite_outside_mask(image, req.source, req.mask)
        revised = reading.revised_prompt
        if revised is None:
            # Text outside the grammar: say what the picture came out as, if it reads as a
            # scene of the world, else give the prompt back as it was taken.
            drawn = read_indices_scene(indices)
            revised = describe(drawn) if drawn is not None else req.prompt
        return RenderResult(image, encode_tokens(tokens), revised)

    # -- checkpoints ------------------------------------------------------------

    def save_state(self, state: RenderState) -> bytes:
        """Its tokens so far. Redraws are not saved: a render resumed while they ran
        checks its images again and redraws the same way (the seeds are derived), so
        its step is saved one short of done, where the redraws begin."""
        state = _own(state)
        buf = io.BytesIO()
        np.savez(
            buf,
            version=STATE_VERSION,
            step=min(state.step, state.total_steps - 1) if not state.settled else state.step,
            total_steps=state.total_steps,
            position=state.generation.position,
            tokens=state.generation.tokens.numpy().astype(np.int16),
        )
        return buf.getvalue()

    def load_state(self, data: bytes, requests: list[RenderRequest]) -> BuiltinState:
        saved = np.load(io.BytesIO(data))
        if int(saved["version"]) != STATE_VERSION:
            raise ModelInputError("checkpoint from an incompatible built-in model version")
        tokens = torch.from_numpy(saved["tokens"].astype(np.int64))
        if tokens.shape[0] != len(requests):
            raise ModelInputError("checkpoint was taken for a different batch")
        state = self.start(requests)
        state.total_steps = int(saved["total_steps"])
        state.step = int(saved["step"])
        self.sampler.replay(state.generation, tokens, int(saved["position"]))
        return state


def picture(indices: np.ndarray) -> Image.Image:
    """Palette indices as a palette image: the model's exact colours, and a PNG of it is
    smaller and several times quicker to write than an RGB one."""
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette(PALETTE_BYTES)
    return image


def composite_outside_mask(
    image: Image.Image, source: Image.Image, mask: Image.Image
) -> Image.Image:
    """Keep the source's pixels wherever the mask is opaque, at the output's size.

    This is the guarantee behind masked edits: whatever the model did, pixels outside
    the user's mask come from the user's image.
    """
    size = image.size
    src = np.asarray(source.convert("RGB").resize(size, Image.Resampling.NEAREST))
    keep = np.asarray(mask.convert("RGBA").resize(size, Image.Resampling.NEAREST))[..., 3] != 0
    out = np.asarray(image.convert("RGB")).copy()
    out[keep] = src[keep]
    return Image.fromarray(out)
