"""Run a local diffusers text-to-image pipeline folder behind the ``ImageModel`` protocol.

The denoising loop is the one inside ``StableDiffusionPipeline.__call__``, taken apart
so the worker can drive it one step at a time and batch requests that are at different
steps (continuous batching). The package reads in the order a render happens:

* ``options``: what the backend is built with, checked (no diffusers needed for that);
* ``loading``: the folder loaded (``local_files_only``: nothing is ever downloaded) and
  unsupported pipelines refused;
* ``prompts``: each request checked and sized, every prompt of a batch encoded at once;
* ``denoise``: each request's own scheduler and seeded noise, then one UNet pass per
  step for all requests of a size, each at its own timestep;
* ``decoding``: previews and final images;
* ``checkpoint``: ``save_state``/``load_state``, everything needed to continue bit for bit;
* ``state``: what a render in progress holds; ``backend``: the ``ImageModel`` itself.

Supported: UNet2DConditionModel pipelines whose UNet denoises the VAE latents directly
(``StableDiffusionPipeline`` 1.x/2.x including v-prediction, ``StableDiffusionXLPipeline``,
``LatentConsistencyModelPipeline`` and fine-tunes saved as any of those). Transformer
pipelines (SD3, Flux, PixArt, ...), img2img/inpaint/depth/pix2pix pipelines and
single-file checkpoints are rejected with a clear error. See docs/models-diffusers.md.

Importing this package imports torch but never diffusers or transformers: ``setup`` does.
"""

from daguerre.models.diffusers.backend import DiffusersModel
from daguerre.models.diffusers.state import DiffusersState

__all__ = ["DiffusersModel", "DiffusersState"]
