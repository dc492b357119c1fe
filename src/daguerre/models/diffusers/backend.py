"""A local diffusers text-to-image pipeline folder behind the ``ImageModel`` protocol.

The class is a thin shell over the package's modules: ``options`` checks what it is
built with, ``loading`` loads the folder, ``prompts`` plans and encodes requests,
``denoise`` is the loop, ``decoding`` turns latents into pictures and ``checkpoint``
saves and resumes progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from daguerre.models.base import ModelInputError, RenderRequest, RenderResult, RenderState
from daguerre.models.diffusers import checkpoint, prompts
from daguerre.models.diffusers.decoding import decode, estimate
from daguerre.models.diffusers.denoise import Work, denoise, start_item
from daguerre.models.diffusers.loading import Pipeline, load
from daguerre.models.diffusers.options import parse_options
from daguerre.models.diffusers.state import DiffusersState, batch_key, check_state, state_bytes


class DiffusersModel:
    """A local diffusers pipeline folder as a Daguerre backend.

    Options (all keyword, as passed through ``create_model("diffusers", ...)``):

    ``path``            the pipeline folder (required).
    ``dtype``           ``float32``/``float16``/``bfloat16``; default float16 on CUDA,
                        float32 elsewhere.
    ``steps``           steps for requests that do not set ``steps``; default: the
                        pipeline's own default (50 for Stable Diffusion).
    ``guidance_scale``  classifier-free guidance; default: the pipeline's own (7.5 for
                        SD, 5.0 for SDXL); 1 or less turns CFG off.
    ``scheduler``       a diffusers scheduler class name (``"EulerDiscreteScheduler"``)
                        to use instead of the folder's, built from the folder's config.
    ``eta``             DDIM-style eta for schedulers that take it (default 0).
    ``variant``         weight variant to load, such as ``"fp16"``.
    ``max_side``        cap on the longer side actually rendered; larger requests are
                        rendered smaller (same aspect) and resized up. Default: no cap.
    ``name``            the name this backend reports (default ``"diffusers"``).
    ``batch_images``    default batch budget (in images) of a pool serving this model;
                        size it to the GPU: see docs/performance.md. Default 8.
    """

    can_edit: bool = False
    batch_images: int

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        dtype: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        variant: str | None = None,
        max_side: int | None = None,
        name: str = "diffusers",
        batch_images: int = 8,
    ) -> None:
        self._options = parse_options(
            path,
            dtype=dtype,
            steps=steps,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            eta=eta,
            variant=variant,
            max_side=max_side,
            batch_images=batch_images,
        )
        self.batch_images = self._options.batch_images
        self.name = name
        # The usual Stable Diffusion 1.x size until setup reads the real one.
        self.native_size: int = 512
        self._pipeline: Pipeline | None = None  # set by setup()

    def setup(self, device: str = "cpu") -> None:
        """Load the pipeline from ``path`` onto ``device``. Nothing is downloaded."""
        pipeline = load(self._options, device)
        self.native_size = pipeline.native_size
        self._pipeline = pipeline

    def _loaded(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("DiffusersModel.setup() must be called before rendering")
        return self._pipeline

    def _plan(self, request: RenderRequest) -> prompts.Plan:
        return prompts.plan(request, self._loaded(), self._options.max_side, self.name)

    # ------------------------------------------------------------------ the loop

    def start(self, requests: list[RenderRequest]) -> RenderState:
        """Encode all prompts in one batch and give each request its starting noise."""
        pipeline = self._loaded()
        if not requests:
            raise ModelInputError("no requests to render")
        plans = [self._plan(request) for request in requests]
        with torch.no_grad():
            conds, unconds, conds_added, unconds_added = prompts.encode(pipeline, plans)
            items = [
                start_item(pipeline, plan, conds[i], unconds[i], conds_added[i], unconds_added[i])
                for i, plan in enumerate(plans)
            ]
        return DiffusersState(
            step=0, total_steps=max(item.num_steps for item in items), items=items
        )

    def step(self, state: RenderState) -> RenderState:
        """Advance every unfinished request by one scheduler step (in place)."""
        return self.step_many([state])[0]

    def step_many(self, states: Sequence[RenderState]) -> list[RenderState]:
        """Advance every unfinished state by one loop iteration, in shared UNet passes.

        States are generally at different loop indices (requests join and leave the
        worker's running set at any step), so each request is denoised at its own
        timestep: the UNet takes a timestep per row. One loop iteration is one UNet pass
        for every request, so no state is ever stopped short. Finished states are left
        as they are; the states are updated in place and returned in order.
        """
        pipeline = self._loaded()
        own = [check_state(state) for state in states]
        advancing: dict[int, DiffusersState] = {}
        for st in own:
            # id(): a state listed twice is still advanced once.
            if st.step < st.total_steps:
                advancing.setdefault(id(st), st)
        # Each request still denoising, paired with the loop index it is at. Requests of
        # one state may have different lengths; those past their own end sit out.
        groups: dict[tuple[object, ...], list[Work]] = {}
        for st in advancing.values():
            for item in st.items:
                if st.step < item.num_steps:
                    groups.setdefault(batch_key(item), []).append((item, st.step))
        with torch.no_grad():
            for group in groups.values():
                denoise(pipeline, self._options.eta, group)
        for st in advancing.values():
            st.step += 1
        return list(own)

    def state_bytes(self, state: RenderState) -> int:
        """Bytes of the tensors the state holds (see ``state.state_bytes``)."""
        return state_bytes(check_state(state))

    def preview(self, state: RenderState, index: int) -> Image.Image | None:
        """Decode the current clean-image estimate of request ``index``; None before step 1."""
        pipeline = self._loaded()
        st = check_state(state)
        item = st.items[index]
        if st.step == 0:
            return None
        with torch.no_grad():
            return decode(pipeline.pipe.vae, estimate(item, st.step), item.out_size)

    def finish(self, state: RenderState) -> list[RenderResult]:
        """Decode every request. Called early, it returns the current (noisier) estimates."""
        vae = self._loaded().pipe.vae
        st = check_state(state)
        with torch.no_grad():
            return [
                RenderResult(image=decode(vae, estimate(item, st.step), item.out_size))
                for item in st.items
            ]

    # ------------------------------------------------------------------ checkpoints

    def save_state(self, state: RenderState) -> bytes:
        """Serialise a batch's progress. The state itself is left untouched."""
        pipeline = self._loaded()
        return checkpoint.save(pipeline, check_state(state))

    def load_state(self, data: bytes, requests: list[RenderRequest]) -> RenderState:
        """Rebuild a state saved by ``save_state`` for the same ``requests``."""
        pipeline = self._loaded()
        return checkpoint.load(pipeline, data, requests, lambda r: self._plan(r).key)
