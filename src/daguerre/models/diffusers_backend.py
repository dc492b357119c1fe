"""Run a local diffusers text-to-image pipeline folder behind the ``ImageModel`` protocol.

The folder is anything saved with ``pipeline.save_pretrained(folder)`` (it holds a
``model_index.json``). It is loaded with ``local_files_only=True``: this backend never
downloads anything.

The denoising loop is the one inside ``StableDiffusionPipeline.__call__``, taken apart
so the worker can drive it one step at a time:

* ``start`` encodes all prompts in one batch, draws each request's starting noise
  from its own seeded CPU ``torch.Generator`` and gives each request its own copy of
  the scheduler with its timesteps set;
* ``step`` runs the UNet once for the batch (unconditional and conditional rows
  together for classifier-free guidance), combines the guidance, and steps each
  request's scheduler;
* ``step_many`` does the same for many states at once, each at its own step: the UNet
  takes one timestep per row, so requests at different points of their schedules share
  one forward pass (continuous batching);
* ``preview`` decodes the scheduler's current estimate of the clean image;
* ``finish`` decodes the final latents and resizes to the requested size;
* ``save_state``/``load_state`` round-trip everything needed to continue bit for bit.

Each request owns its scheduler and generator, rather than the batch sharing one as
diffusers does, for three reasons: requests in one batch may ask for different step
counts and sizes; stochastic schedulers (ancestral, SDE, DDIM with eta, LCM) draw noise
from the generator on every step, so a request's image would otherwise depend on its
neighbours; and a request's resume state is then simply its own scheduler's attributes.
The price is a Python-level scheduler call per request per step, which is nothing next
to a UNet forward pass. Owning them is also what lets requests join and leave a running
batch at any step: nothing about a request's schedule is shared with its neighbours.

Supported: UNet2DConditionModel pipelines whose UNet denoises the VAE latents directly
(``StableDiffusionPipeline`` 1.x/2.x including v-prediction, ``StableDiffusionXLPipeline``,
``LatentConsistencyModelPipeline`` and fine-tunes saved as any of those). Transformer
pipelines (SD3, Flux, PixArt, ...), img2img/inpaint/depth/pix2pix pipelines and
single-file checkpoints are rejected with a clear error. See docs/models-diffusers.md.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from daguerre.models.base import ModelInputError, RenderRequest, RenderResult, RenderState

__all__ = ["DiffusersModel", "DiffusersState"]

_INSTALL_HINT = "pip install 'daguerre[diffusers]'"

# Bumped whenever the save_state layout changes, so an old checkpoint fails loudly
# instead of resuming into garbage.
_STATE_FORMAT = "daguerre.diffusers.state"
_STATE_VERSION = 1

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

# Components we never call. Passing None for them skips loading their weights (the SD
# safety checker alone is a ~1.2 GB CLIP model); moderation is not this layer's job.
_UNUSED_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")

# Pipeline classes whose UNet expects something other than pure text conditioning
# (a source image, a mask, aesthetic scores). Their folders load fine but cannot be
# driven as text-to-image, so refuse them before loading gigabytes of weights.
_NOT_TEXT_TO_IMAGE = ("Img2Img", "Inpaint", "Upscale", "Pix2Pix", "Depth2Img", "ControlNet")


@dataclass
class _Item:
    """One request's share of a batch: its latents, conditioning, scheduler and RNG."""

    key: str
    out_size: tuple[int, int]  # (width, height) the caller asked for
    latents: torch.Tensor  # (1, C, h, w) at the render size
    cond: torch.Tensor  # (1, seq, dim) prompt embeddings
    uncond: torch.Tensor | None  # negative-prompt embeddings; None when no CFG
    cond_added: dict[str, torch.Tensor]  # SDXL pooled embeddings and time ids
    uncond_added: dict[str, torch.Tensor]
    guidance_scale: float
    scheduler: Any
    generator: torch.Generator
    num_steps: int  # len(scheduler.timesteps): more than the step count for PNDM/Heun
    x0: torch.Tensor | None = None  # the scheduler's latest clean-image estimate


@dataclass
class DiffusersState:
    """Progress of a batch. ``step`` counts loop iterations done, out of ``total_steps``."""

    step: int
    total_steps: int
    items: list[_Item] = field(default_factory=list)


class DiffusersModel:
    """A local diffusers pipeline folder as a Daguerre backend.

    Options (all keyword, as passed through ``create_model("diffusers", ...)``):

    ``path``            the pipeline folder (required).
    ``dtype``           ``float32``/``float16``/``bfloat16``; default float16 on CUDA,
                        float32 elsewhere.
    ``steps``           steps for requests that do not set ``steps``; default: the
                        pipeline's own default (50 for Stable Diffusion).
    ``guidance_scale``  classifier-free guidance; default: the pipeline's own (7.5 for
                        SD, 5.0 for SDXL). A request may override it with
                        ``options["guidance_scale"]``; 1 or less turns CFG off.
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
        # Only validate here: the registry builds backends on machines (an API server)
        # that may have neither the weights nor diffusers installed.
        if path is None or str(path).strip() == "":
            raise ValueError(
                "the diffusers backend needs a path option: a local folder saved with "
                "DiffusionPipeline.save_pretrained (it contains model_index.json)"
            )
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        # Options may arrive as strings from settings/env, hence the conversions.
        self._steps = None if steps is None else int(steps)
        if self._steps is not None and self._steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps!r}")
        self._max_side = None if max_side is None else int(max_side)
        if self._max_side is not None and self._max_side < 8:
            raise ValueError(f"max_side must be at least 8, got {max_side!r}")
        self.batch_images = int(batch_images)
        if self.batch_images < 1:
            raise ValueError(f"batch_images must be at least 1, got {batch_images!r}")
        self._path = Path(path).expanduser()
        self._dtype_name = dtype
        self._guidance_scale = None if guidance_scale is None else float(guidance_scale)
        self._scheduler_name = scheduler
        self._eta = float(eta)
        self._variant = variant
        self.name = name
        # The usual Stable Diffusion 1.x size until setup reads the real one.
        self.native_size: int = 512

        # Filled in by setup().
        self._pipe: Any = None
        self._scheduler: Any = None
        self._device = torch.device("cpu")
        self._dtype = torch.float32
        self._sdxl = False
        self._step_takes_eta = False
        self._step_takes_generator = False
        self._default_steps = 50
        self._default_guidance = 7.5
        self._time_cond_dim: int | None = None
        self._vae_factor = 8
        self._latent_channels = 4

    # ------------------------------------------------------------------ loading

    def setup(self, device: str = "cpu") -> None:
        """Load the pipeline from ``path`` onto ``device``. Nothing is downloaded."""
        try:
            import diffusers
            import transformers  # noqa: F401  (every supported pipeline has CLIP encoders)
        except ImportError as exc:
            raise ImportError(
                f"the diffusers backend needs the optional diffusers extra: {_INSTALL_HINT}"
            ) from exc

        index = self._read_model_index()
        class_name = str(index.get("_class_name", "?"))
        if "unet" not in index:
            raise ValueError(
                f"{self._path}: pipeline {class_name} has no UNet; the diffusers backend runs "
                "UNet2DConditionModel pipelines (Stable Diffusion 1.x/2.x, SDXL, LCM), not "
                "transformer-based ones such as SD3, Flux or PixArt"
            )
        if any(word in class_name for word in _NOT_TEXT_TO_IMAGE):
            raise ValueError(
                f"{self._path}: {class_name} is not a text-to-image pipeline; save the "
                "text-to-image pipeline of the same model instead"
            )

        self._device = torch.device(device)
        if self._dtype_name is not None:
            self._dtype = _DTYPES[self._dtype_name]
        else:
            # Half precision is the norm on GPUs; CPU kernels for it are slow or missing.
            self._dtype = torch.float16 if self._device.type == "cuda" else torch.float32

        skip: dict[str, Any] = {name: None for name in _UNUSED_COMPONENTS if name in index}
        if "requires_safety_checker" in index:
            # Otherwise diffusers warns loudly that we dropped the checker we never run.
            skip["requires_safety_checker"] = False
        skip[_dtype_keyword()] = self._dtype
        pipe = diffusers.DiffusionPipeline.from_pretrained(
            str(self._path), local_files_only=True, variant=self._variant, **skip
        )
        self._check_pipeline(pipe)
        pipe.to(self._device)

        self._sdxl = getattr(pipe.unet.config, "addition_embed_type", None) == "text_time"
        if (
            self._sdxl
            and pipe.vae.dtype == torch.float16
            and pipe.vae.config.get("force_upcast", False)
        ):
            # The SDXL VAE overflows in float16 (black or NaN images); diffusers upcasts it
            # for decoding, we keep it upcast.
            pipe.vae.to(torch.float32)

        if self._scheduler_name is not None:
            cls = getattr(diffusers, self._scheduler_name, None)
            if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
                raise ValueError(f"diffusers has no scheduler called {self._scheduler_name!r}")
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        # A pristine scheduler that each request deep-copies; it never gets timesteps set.
        self._scheduler = pipe.scheduler
        step_params = inspect.signature(self._scheduler.step).parameters
        self._step_takes_eta = "eta" in step_params
        self._step_takes_generator = "generator" in step_params

        # Defaults come from the pipeline's own __call__ so each family keeps its tuning
        # (SD 7.5, SDXL 5.0, LCM 8.5 with few steps) unless the operator overrides them.
        call_params = inspect.signature(pipe.__call__).parameters
        self._default_steps = self._steps or _param_default(call_params, "num_inference_steps", 50)
        self._default_guidance = (
            self._guidance_scale
            if self._guidance_scale is not None
            else float(_param_default(call_params, "guidance_scale", 7.5))
        )
        self._time_cond_dim = pipe.unet.config.get("time_cond_proj_dim")
        self._vae_factor = int(
            getattr(pipe, "vae_scale_factor", 0)
            or 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        )
        sample_size = pipe.unet.config.sample_size
        if isinstance(sample_size, (list, tuple)):
            sample_size = sample_size[0]
        self.native_size = int(sample_size) * self._vae_factor
        self._latent_channels = int(pipe.unet.config.in_channels)
        self._pipe = pipe

    def _read_model_index(self) -> dict[str, Any]:
        if not self._path.is_dir():
            raise FileNotFoundError(
                f"diffusers pipeline folder {self._path} does not exist; set the backend's "
                "path option to a local folder saved with DiffusionPipeline.save_pretrained"
            )
        index_file = self._path / "model_index.json"
        if not index_file.is_file():
            raise FileNotFoundError(
                f"{self._path} has no model_index.json, so it is not a diffusers pipeline "
                "folder (single-file .safetensors/.ckpt checkpoints are not supported; convert "
                "them with DiffusionPipeline.from_single_file(...).save_pretrained(folder))"
            )
        data = json.loads(index_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{index_file} is not a JSON object")
        return data

    def _check_pipeline(self, pipe: Any) -> None:
        """Refuse pipelines this loop cannot drive, naming what is missing."""
        kind = type(pipe).__name__
        missing = [
            part
            for part in ("unet", "vae", "scheduler", "text_encoder", "tokenizer")
            if getattr(pipe, part, None) is None
        ]
        if missing or not callable(getattr(pipe, "encode_prompt", None)):
            what = ", ".join(missing) or "encode_prompt"
            raise ValueError(f"{kind} from {self._path} is not supported: it lacks {what}")
        unet_config = pipe.unet.config
        latent_channels = pipe.vae.config.get("latent_channels")
        if unet_config.in_channels != latent_channels:
            # Inpainting (9), depth (5) and pix2pix (8) UNets take extra image channels.
            raise ValueError(
                f"{kind} from {self._path} is not supported: its UNet takes "
                f"{unet_config.in_channels} input channels but the VAE makes "
                f"{latent_channels}, so it needs an image input (inpaint/depth/pix2pix)"
            )
        extra = unet_config.get("addition_embed_type")
        if extra not in (None, "text_time"):
            raise ValueError(
                f"{kind} from {self._path} is not supported: its UNet needs "
                f"{extra!r} added conditioning"
            )
        if unet_config.get("class_embed_type") is not None:
            # Stable unCLIP and the x4 upscaler condition on an image embedding or noise level.
            raise ValueError(
                f"{kind} from {self._path} is not supported: its UNet needs class labels"
            )
        if extra == "text_time" and not callable(getattr(pipe, "_get_add_time_ids", None)):
            raise ValueError(f"{kind} from {self._path} is not supported: no SDXL time ids")
        if unet_config.get("time_cond_proj_dim") is not None and not callable(
            getattr(pipe, "get_guidance_scale_embedding", None)
        ):
            raise ValueError(f"{kind} from {self._path} is not supported: no guidance embedding")

    def _require_setup(self) -> Any:
        if self._pipe is None:
            raise RuntimeError("DiffusersModel.setup() must be called before rendering")
        return self._pipe

    # ------------------------------------------------------------------ the loop

    def start(self, requests: list[RenderRequest]) -> RenderState:
        self._require_setup()
        if not requests:
            raise ModelInputError("no requests to render")
        plans = [self._plan(request) for request in requests]

        with torch.no_grad():
            conds, unconds, conds_added, unconds_added = self._encode(plans)
            items: list[_Item] = []
            for i, plan in enumerate(plans):
                scheduler = copy.deepcopy(self._scheduler)
                try:
                    scheduler.set_timesteps(plan.steps, device=self._device)
                except ValueError as exc:
                    # e.g. LCM refuses more steps than it was distilled for.
                    raise ModelInputError(f"steps={plan.steps}: {exc}") from exc
                # Noise is drawn on the CPU so a seed gives the same image on any device.
                generator = torch.Generator("cpu").manual_seed(plan.seed)
                shape = (
                    1,
                    self._latent_channels,
                    plan.render_size[1] // self._vae_factor,
                    plan.render_size[0] // self._vae_factor,
                )
                noise = torch.randn(shape, generator=generator, dtype=torch.float32)
                latents = noise.to(self._device, self._dtype) * scheduler.init_noise_sigma
                items.append(
                    _Item(
                        key=plan.key,
                        out_size=plan.out_size,
                        latents=latents,
                        cond=conds[i],
                        uncond=unconds[i] if plan.cfg else None,
                        cond_added=conds_added[i],
                        uncond_added=unconds_added[i] if plan.cfg else {},
                        guidance_scale=plan.guidance_scale,
                        scheduler=scheduler,
                        generator=generator,
                        num_steps=len(scheduler.timesteps),
                    )
                )
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
        self._require_setup()
        own = [_check_state(state) for state in states]
        advancing: dict[int, DiffusersState] = {}
        for st in own:
            # id(): a state listed twice is still advanced once.
            if st.step < st.total_steps:
                advancing.setdefault(id(st), st)
        # Each request still denoising, paired with the loop index it is at. Requests of
        # one state may have different lengths; those past their own end sit out.
        work = [
            (item, st.step)
            for st in advancing.values()
            for item in st.items
            if st.step < item.num_steps
        ]
        groups: dict[tuple[Any, ...], list[tuple[_Item, int]]] = {}
        for item, k in work:
            groups.setdefault(_batch_key(item), []).append((item, k))
        with torch.no_grad():
            for group in groups.values():
                self._denoise(group)
        for st in advancing.values():
            st.step += 1
        return list(own)

    def state_bytes(self, state: RenderState) -> int:
        """Bytes of the tensors the state holds: latents, clean estimates, prompt
        embeddings and each scheduler's own tensors (its tables and, for multistep
        solvers, its history of model outputs). Memory shared between them (``x0`` is
        often the scheduler's latest model output) is counted once."""
        st = _check_state(state)
        seen: dict[tuple[str, int], int] = {}
        for item in st.items:
            scheduler_attrs = {
                name: value
                for name, value in vars(item.scheduler).items()
                if name != "_internal_dict"  # its config: plain Python values
            }
            _count_storage(
                [
                    item.latents,
                    item.x0,
                    item.cond,
                    item.uncond,
                    item.cond_added,
                    item.uncond_added,
                    scheduler_attrs,
                ],
                seen,
            )
        return sum(seen.values())

    def _denoise(self, group: list[tuple[_Item, int]]) -> None:
        """One UNet pass for ``group``, each request at its own loop index ``k``, then
        each request's own scheduler step.

        The rows of a UNet batch never interact (convolutions, group norms and attention
        all work within a row), so stacking requests changes nothing but float rounding:
        a request's image does not depend on what it was batched with.
        """
        pipe = self._pipe
        inputs: list[torch.Tensor] = []
        timesteps: list[torch.Tensor] = []
        embeds: list[torch.Tensor] = []
        added: list[dict[str, torch.Tensor]] = []
        guidance: list[float] = []
        for item, k in group:
            t = item.scheduler.timesteps[k]
            x = item.latents
            if hasattr(item.scheduler, "scale_model_input"):
                x = item.scheduler.scale_model_input(x, t)
            # Unconditional and conditional rows go in the same forward pass, as diffusers
            # does, so CFG costs one (twice as wide) UNet call rather than two. Requests
            # without CFG bring one row: rows are independent, so the two kinds mix.
            rows = [(item.uncond, item.uncond_added)] if item.uncond is not None else []
            rows.append((item.cond, item.cond_added))
            for embed, extra in rows:
                inputs.append(x)
                # A timestep per row: this is what lets requests at different steps
                # (and with different schedules) share the pass.
                timesteps.append(torch.as_tensor(t, device=self._device).reshape(()))
                embeds.append(embed)
                added.append(extra)
                guidance.append(item.guidance_scale)

        timestep_cond = None
        if self._time_cond_dim is not None:
            # LCM-distilled UNets take the guidance scale as an embedding instead of CFG,
            # one per row, so requests with different scales still share the pass.
            w = torch.tensor(guidance, dtype=torch.float32) - 1
            timestep_cond = pipe.get_guidance_scale_embedding(
                w, embedding_dim=self._time_cond_dim
            ).to(self._device, self._dtype)
        added_cond_kwargs = None
        if added[0]:
            # _batch_key put only requests with the same added conditioning in a group,
            # so every row has every key.
            added_cond_kwargs = {key: torch.cat([a[key] for a in added]) for key in added[0]}
        noise_pred = pipe.unet(
            torch.cat(inputs),
            torch.stack(timesteps),
            encoder_hidden_states=torch.cat(embeds),
            timestep_cond=timestep_cond,
            added_cond_kwargs=added_cond_kwargs,
            return_dict=False,
        )[0]

        row = 0
        for item, k in group:
            if item.uncond is not None:
                uncond, text = noise_pred[row : row + 1], noise_pred[row + 1 : row + 2]
                eps = uncond + item.guidance_scale * (text - uncond)
                row += 2
            else:
                eps = noise_pred[row : row + 1]
                row += 1
            kwargs: dict[str, Any] = {}
            if self._step_takes_eta:
                kwargs["eta"] = self._eta
            if self._step_takes_generator:
                # The request's own generator: stochastic schedulers draw fresh noise here.
                kwargs["generator"] = item.generator
            t = item.scheduler.timesteps[k]
            out = item.scheduler.step(eps, t, item.latents, return_dict=True, **kwargs)
            item.latents = out.prev_sample
            item.x0 = _clean_estimate(item.scheduler, out)

    def preview(self, state: RenderState, index: int) -> Image.Image | None:
        """Decode the current clean-image estimate of request ``index``; None before step 1."""
        self._require_setup()
        st = _check_state(state)
        item = st.items[index]
        if st.step == 0:
            return None
        with torch.no_grad():
            return self._decode(self._estimate(item, st.step), item.out_size)

    def finish(self, state: RenderState) -> list[RenderResult]:
        """Decode every request. Called early, it returns the current (noisier) estimates."""
        self._require_setup()
        st = _check_state(state)
        with torch.no_grad():
            return [
                RenderResult(image=self._decode(self._estimate(item, st.step), item.out_size))
                for item in st.items
            ]

    @staticmethod
    def _estimate(item: _Item, step: int) -> torch.Tensor:
        # Mid-run latents are still noisy (and, for sigma schedulers, scaled far beyond the
        # VAE's range); the scheduler's clean estimate is what a preview should show.
        if step >= item.num_steps or item.x0 is None:
            return item.latents
        return item.x0

    def _decode(self, latents: torch.Tensor, size: tuple[int, int]) -> Image.Image:
        vae = self._pipe.vae
        config = vae.config
        z = latents.to(vae.device, vae.dtype)
        mean, std = config.get("latents_mean"), config.get("latents_std")
        if mean is not None and std is not None:
            # Some VAEs (e.g. the SDXL fine-tunes that set these) normalise per channel.
            channels = z.shape[1]
            mean_t = torch.tensor(mean).view(1, channels, 1, 1).to(z.device, z.dtype)
            std_t = torch.tensor(std).view(1, channels, 1, 1).to(z.device, z.dtype)
            z = z * std_t / config.scaling_factor + mean_t
        else:
            z = z / config.scaling_factor
            if config.get("shift_factor") is not None:
                z = z + config.shift_factor
        pixels = vae.decode(z, return_dict=False)[0]
        # The same mapping as diffusers' VaeImageProcessor.postprocess, without needing it.
        array = (
            ((pixels[0].float() / 2 + 0.5).clamp(0, 1) * 255)
            .round()
            .to(torch.uint8)
            .permute(1, 2, 0)
            .cpu()
            .numpy()
        )
        image = Image.fromarray(array, "RGB")
        if image.size != size:
            # Render sizes are rounded to the VAE's multiple (and capped by max_side).
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image

    # ------------------------------------------------------------------ requests

    def _plan(self, request: RenderRequest) -> _Plan:
        if request.is_edit:
            raise ModelInputError(
                f"model {self.name!r} (diffusers text-to-image) cannot edit images; "
                "send a text-to-image request or use a backend that supports edits"
            )
        if not isinstance(request.prompt, str):
            raise ModelInputError("prompt must be a string")
        steps = self._default_steps if request.steps is None else request.steps
        limit = int(self._scheduler.config.get("num_train_timesteps", 1000))
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= limit:
            raise ModelInputError(f"steps must be an integer from 1 to {limit}, got {steps!r}")
        seed = request.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64:
            raise ModelInputError(f"seed must be a 64-bit integer, got {seed!r}")
        width, height = request.width, request.height
        if not all(isinstance(v, int) and v > 0 for v in (width, height)):
            raise ModelInputError(f"width and height must be positive, got {width}x{height}")
        negative = request.options.get("negative_prompt") or ""
        if not isinstance(negative, str):
            raise ModelInputError("options['negative_prompt'] must be a string")
        guidance = request.options.get("guidance_scale", self._default_guidance)
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)):
            raise ModelInputError("options['guidance_scale'] must be a number")
        guidance = float(guidance)

        scale = 1.0
        if self._max_side is not None and max(width, height) > self._max_side:
            scale = self._max_side / max(width, height)
        factor = self._vae_factor
        # The VAE works in blocks of `factor` pixels; round to the nearest whole block.
        render_size = (
            max(factor, int(width * scale / factor + 0.5) * factor),
            max(factor, int(height * scale / factor + 0.5) * factor),
        )
        key_source = json.dumps([request.prompt, negative, request.seed, width, height])
        return _Plan(
            key=hashlib.sha256(key_source.encode()).hexdigest()[:16],
            prompt=request.prompt,
            negative=negative,
            seed=seed,
            steps=steps,
            guidance_scale=guidance,
            # CFG-distilled (LCM) UNets get guidance through an embedding instead.
            cfg=guidance > 1.0 and self._time_cond_dim is None,
            out_size=(width, height),
            render_size=render_size,
        )

    def _encode(
        self, plans: list[_Plan]
    ) -> tuple[
        list[torch.Tensor],
        list[torch.Tensor],
        list[dict[str, torch.Tensor]],
        list[dict[str, torch.Tensor]],
    ]:
        """Encode all prompts (and negatives) in one batch; split back per request."""
        pipe = self._pipe
        any_cfg = any(plan.cfg for plan in plans)
        negatives = [plan.negative for plan in plans]
        # None (rather than a list of "") lets SDXL use its zero negative embedding.
        negative_prompt = negatives if any_cfg and any(negatives) else None
        out = pipe.encode_prompt(
            prompt=[plan.prompt for plan in plans],
            device=self._device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=any_cfg,
            negative_prompt=negative_prompt,
        )
        cond, uncond = out[0], out[1]
        if uncond is None:
            uncond = torch.zeros_like(cond)
        n = len(plans)
        conds_added: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        unconds_added: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        if self._sdxl:
            pooled, uncond_pooled = out[2], out[3]
            if uncond_pooled is None:
                uncond_pooled = torch.zeros_like(pooled)
            if any_cfg and pipe.config.get("force_zeros_for_empty_prompt", False):
                # Match SDXL's own behaviour for an empty negative prompt whatever else is
                # in the batch (encode_prompt only zeroes when *every* negative is empty).
                for i, negative in enumerate(negatives):
                    if not negative:
                        uncond[i].zero_()
                        uncond_pooled[i].zero_()
            projection_dim = (
                int(pipe.text_encoder_2.config.projection_dim)
                if getattr(pipe, "text_encoder_2", None) is not None
                else int(pooled.shape[-1])
            )
            for i, plan in enumerate(plans):
                width, height = plan.render_size
                time_ids = pipe._get_add_time_ids(
                    (height, width),
                    (0, 0),
                    (height, width),
                    dtype=cond.dtype,
                    text_encoder_projection_dim=projection_dim,
                ).to(self._device)
                conds_added[i] = {"text_embeds": pooled[i : i + 1].clone(), "time_ids": time_ids}
                unconds_added[i] = {
                    "text_embeds": uncond_pooled[i : i + 1].clone(),
                    "time_ids": time_ids.clone(),
                }
        # Clone the slices: a view would keep (and torch.save would write) the whole batch.
        return (
            [cond[i : i + 1].clone() for i in range(n)],
            [uncond[i : i + 1].clone() for i in range(n)],
            conds_added,
            unconds_added,
        )

    # ------------------------------------------------------------------ checkpoints

    def save_state(self, state: RenderState) -> bytes:
        """Serialise a batch's progress. The state itself is left untouched."""
        self._require_setup()
        st = _check_state(state)
        template = vars(self._scheduler)
        items = []
        for item in st.items:
            # Only what differs from the pristine scheduler that load_state copies again:
            # the beta/alpha tables (thousands of floats) never change and are left out.
            scheduler_state = {
                name: value
                for name, value in vars(item.scheduler).items()
                if name != "_internal_dict"
                and not (name in template and _unchanged(value, template[name]))
            }
            # Some schedulers rewrite their own config in set_timesteps (DPM-Solver
            # single-step forces lower_order_final for odd step counts); keep that too.
            config_changes = {
                key: value
                for key, value in item.scheduler.config.items()
                if not _unchanged(value, self._scheduler.config.get(key))
            }
            try:
                encoded_scheduler = _encode_value(scheduler_state)
                encoded_config = _encode_value(config_changes)
            except TypeError as exc:
                raise ValueError(
                    f"cannot checkpoint {type(item.scheduler).__name__}: {exc}; "
                    "choose another scheduler"
                ) from exc
            items.append(
                {
                    "key": item.key,
                    "out_size": list(item.out_size),
                    "latents": _to_cpu(item.latents),
                    "x0": None if item.x0 is None else _to_cpu(item.x0),
                    "cond": _to_cpu(item.cond),
                    "uncond": None if item.uncond is None else _to_cpu(item.uncond),
                    "cond_added": {k: _to_cpu(v) for k, v in item.cond_added.items()},
                    "uncond_added": {k: _to_cpu(v) for k, v in item.uncond_added.items()},
                    "guidance_scale": item.guidance_scale,
                    "num_steps": item.num_steps,
                    "generator": item.generator.get_state(),
                    "scheduler": encoded_scheduler,
                    "scheduler_config": encoded_config,
                }
            )
        payload = {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            "pipeline": type(self._pipe).__name__,
            "scheduler": type(self._scheduler).__name__,
            "step": st.step,
            "total_steps": st.total_steps,
            "items": items,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    def load_state(self, data: bytes, requests: list[RenderRequest]) -> RenderState:
        """Rebuild a state saved by ``save_state`` for the same ``requests``."""
        self._require_setup()
        try:
            # weights_only: checkpoints come back from storage, so never unpickle code.
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for bytes it cannot read
            raise ValueError(f"not a diffusers backend checkpoint: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != _STATE_FORMAT:
            raise ValueError("not a diffusers backend checkpoint")
        if payload.get("version") != _STATE_VERSION:
            raise ValueError(
                f"checkpoint version {payload.get('version')} is not supported "
                f"(this backend writes version {_STATE_VERSION})"
            )
        # Resuming on another model would not fail, just quietly render garbage.
        for part, ours in (
            ("pipeline", type(self._pipe).__name__),
            ("scheduler", type(self._scheduler).__name__),
        ):
            if payload.get(part) != ours:
                raise ValueError(
                    f"checkpoint was made with {part} {payload.get(part)} but this model "
                    f"uses {ours}; it cannot be resumed here"
                )
        saved = payload["items"]
        if len(saved) != len(requests):
            raise ModelInputError(
                f"checkpoint holds {len(saved)} requests but {len(requests)} were given"
            )
        device = self._device
        items: list[_Item] = []
        for request, entry in zip(requests, saved, strict=True):
            plan = self._plan(request)
            if plan.key != entry["key"]:
                raise ModelInputError("checkpoint was made for different requests")
            scheduler = copy.deepcopy(self._scheduler)
            config_changes = _decode_value(entry["scheduler_config"], device)
            if config_changes:
                scheduler.register_to_config(**config_changes)
            scheduler.__dict__.update(_decode_value(entry["scheduler"], device))
            generator = torch.Generator("cpu")
            generator.set_state(entry["generator"])
            x0, uncond = entry["x0"], entry["uncond"]
            items.append(
                _Item(
                    key=entry["key"],
                    out_size=(int(entry["out_size"][0]), int(entry["out_size"][1])),
                    latents=entry["latents"].to(device),
                    x0=None if x0 is None else x0.to(device),
                    cond=entry["cond"].to(device),
                    uncond=None if uncond is None else uncond.to(device),
                    cond_added={k: v.to(device) for k, v in entry["cond_added"].items()},
                    uncond_added={k: v.to(device) for k, v in entry["uncond_added"].items()},
                    guidance_scale=float(entry["guidance_scale"]),
                    scheduler=scheduler,
                    generator=generator,
                    num_steps=int(entry["num_steps"]),
                )
            )
        return DiffusersState(
            step=int(payload["step"]), total_steps=int(payload["total_steps"]), items=items
        )


@dataclass
class _Plan:
    """A validated request, with the sizes and settings the loop will use."""

    key: str
    prompt: str
    negative: str
    seed: int
    steps: int
    guidance_scale: float
    cfg: bool
    out_size: tuple[int, int]
    render_size: tuple[int, int]


def _check_state(state: RenderState) -> DiffusersState:
    if not isinstance(state, DiffusersState):
        raise TypeError(f"expected a DiffusersState, got {type(state).__name__}")
    return state


def _batch_key(item: _Item) -> tuple[Any, ...]:
    """What must match for requests to share a UNet batch: the latent shape (the render
    size), the prompt embedding's shape, and the added conditioning (SDXL's pooled
    embedding and time ids), which the UNet takes for every row or for none."""
    return (
        tuple(item.latents.shape),
        tuple(item.cond.shape),
        tuple(sorted((name, tuple(value.shape)) for name, value in item.cond_added.items())),
    )


def _count_storage(value: Any, seen: dict[tuple[str, int], int]) -> None:
    """Record in ``seen`` the memory behind every tensor and array inside ``value``,
    keyed by where it lives, so memory reached twice is counted once."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        # The whole storage: a view keeps all of it alive.
        seen[(str(value.device), storage.data_ptr())] = storage.nbytes()
    elif isinstance(value, np.ndarray):
        base = value.base if isinstance(value.base, np.ndarray) else value
        seen[("numpy", base.__array_interface__["data"][0])] = base.nbytes
    elif isinstance(value, (list, tuple)):
        for part in value:
            _count_storage(part, seen)
    elif isinstance(value, dict):
        for part in value.values():
            _count_storage(part, seen)


def _dtype_keyword() -> str:
    """``from_pretrained``'s name for the dtype: newer diffusers renamed ``torch_dtype``
    to ``dtype`` and warn on the old name, older ones only know ``torch_dtype``."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:
        return "torch_dtype"
    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _param_default(params: Any, name: str, fallback: Any) -> Any:
    param = params.get(name)
    if param is None or param.default is inspect.Parameter.empty or param.default is None:
        return fallback
    return param.default


def _clean_estimate(scheduler: Any, out: Any) -> torch.Tensor | None:
    """The scheduler's estimate of the fully denoised latents after its last step."""
    for attr in ("pred_original_sample", "denoised"):  # most schedulers / LCM and TCD
        value = getattr(out, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    # Multistep solvers keep their converted model outputs; in the data-prediction
    # variants those are exactly the clean estimates.
    outputs = getattr(scheduler, "model_outputs", None)
    algorithm = scheduler.config.get("algorithm_type", "")
    predicts_x0 = algorithm in ("dpmsolver++", "sde-dpmsolver++") or bool(
        getattr(scheduler, "predict_x0", False)
    )
    if predicts_x0 and outputs and isinstance(outputs[-1], torch.Tensor):
        return outputs[-1]
    return None


def _unchanged(value: Any, original: Any) -> bool:
    """Whether ``value`` is certainly equal to ``original`` (False when unsure)."""
    if isinstance(value, torch.Tensor):
        return (
            isinstance(original, torch.Tensor)
            and value.shape == original.shape
            and value.dtype == original.dtype
            and value.device == original.device
            and bool(torch.equal(value, original))
        )
    if isinstance(value, np.ndarray):
        return (
            isinstance(original, np.ndarray)
            and value.dtype == original.dtype
            and bool(np.array_equal(value, original))
        )
    if value is None or isinstance(value, (bool, int, float, str)):
        return type(value) is type(original) and value == original
    if isinstance(value, (list, tuple)):
        return (
            type(value) is type(original)
            and len(value) == len(original)
            and all(_unchanged(a, b) for a, b in zip(value, original, strict=True))
        )
    return False


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    # clone() so a view saves only its own elements, not its base's whole storage.
    return tensor.detach().to("cpu").clone()


# Scheduler attributes are tensors, numpy arrays, numbers, flags and lists of those.
# They are written as plain containers of tensors so that torch.load(weights_only=True)
# can read them back; the marker dicts below keep what plain containers would lose.


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        # Remember whether it lived on the accelerator: schedulers keep some tensors
        # (sigmas) on the CPU on purpose, and resume may happen on another device.
        return {"__tensor__": _to_cpu(value), "on_device": value.device.type != "cpu"}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("it keeps a numpy object array")
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return {"__npscalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, list):
        return [_encode_value(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_value(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("it keeps a dict with non-string keys")
        return {"__dict__": {k: _encode_value(v) for k, v in value.items()}}
    raise TypeError(f"it keeps a {type(value).__name__}, which cannot be saved")


def _decode_value(value: Any, device: torch.device) -> Any:
    if isinstance(value, list):
        return [_decode_value(v, device) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        tensor: torch.Tensor = value["__tensor__"]
        return tensor.to(device) if value["on_device"] else tensor
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy()
    if "__npscalar__" in value:
        return np.dtype(value["dtype"]).type(value["__npscalar__"])
    if "__tuple__" in value:
        return tuple(_decode_value(v, device) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode_value(v, device) for k, v in value["__dict__"].items()}
    raise ValueError(f"unrecognised checkpoint entry {sorted(value)}")
