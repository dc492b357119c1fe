"""The diffusers backend, against tiny randomly initialised pipelines built right here.

Nothing is downloaded: the pipelines (UNet, VAE, CLIP text encoder and a CLIP BPE
tokenizer from a hand-written vocabulary) are constructed in memory, saved with
``save_pretrained`` to a temporary folder and loaded back through the registry, with
the hub switched offline and outbound sockets refused for the whole module.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from daguerre.models.base import ImageModel, ModelInputError, RenderRequest, render
from daguerre.models.registry import create_model

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

SIZE = 32
SAMPLE_SIZE = 8  # UNet sample size in latents; the tiny VAE halves, so native is 16 px
PROMPTS = ["a cat", "a dog"]

# numpy 2 deprecation noise from inside diffusers' schedulers, not from this backend.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# ---------------------------------------------------------------------- offline guard


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """These tensors are tiny: on shared cores, handing them between threads costs
    100x the arithmetic (seconds per step instead of milliseconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """Hub offline and no outbound connections: any attempt to fetch fails loudly."""

    def refuse(sock: socket.socket, address: Any, *args: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"the diffusers backend tried to reach {address!r}")
        return real_connect(sock, address, *args)

    real_connect = socket.socket.connect
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        mp.setattr(socket.socket, "connect", refuse)
        yield


# ---------------------------------------------------------------------- tiny pipelines


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values (byte-level BPE)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer from a vocabulary written here: every byte, with and without
    the end-of-word mark, so any prompt tokenises, plus a few merges."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*symbols, *(s + "</w>" for s in symbols), "ca", "cat</w>", "do", "dog</w>"]:
        vocab.setdefault(token, len(vocab))
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges = ["#version: 0.2", "c a", "ca t</w>", "d o", "do g</w>"]
    (folder / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(4, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=2,
        sample_size=SAMPLE_SIZE * 2,
    )


def _text_config(vocab_size: int, **extra: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        **extra,
    )


def _scheduler() -> Any:
    from diffusers import PNDMScheduler

    # Stable Diffusion's own default, and the scheduler with the most run state
    # (numpy timestep tables, a history of model outputs) to checkpoint.
    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
    )


def _unet(**extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    options: dict[str, Any] = {"cross_attention_dim": 32, **extra}
    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=4,
        norm_num_groups=4,
        **options,
    )


def _build(folder: Path, kind: str) -> Path:
    """Save a tiny ``sd`` (StableDiffusionPipeline), ``sdxl`` or ``lcm`` pipeline."""
    import diffusers
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = _tokenizer(folder.parent / f"{folder.name}-tokenizer")
    text_encoder = CLIPTextModel(_text_config(len(tokenizer)))
    pipe: Any
    if kind == "sd":
        pipe = diffusers.StableDiffusionPipeline(
            vae=_vae(),
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=_unet(),
            scheduler=_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    elif kind == "sdxl":
        pipe = diffusers.StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=text_encoder,
            text_encoder_2=CLIPTextModelWithProjection(
                _text_config(len(tokenizer), projection_dim=32)
            ),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            # SDXL conditions on both encoders' hidden states (32 + 32) and on the pooled
            # embedding (32) plus six size/crop numbers embedded 8 wide each.
            unet=_unet(
                cross_attention_dim=64,
                use_linear_projection=True,
                addition_embed_type="text_time",
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=6 * 8 + 32,
            ),
            scheduler=_scheduler(),
            add_watermarker=False,
        )
    elif kind == "lcm":
        pipe = diffusers.LatentConsistencyModelPipeline(
            vae=_vae(),
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            # Guidance-distilled: the scale goes in as an embedding, there is no CFG.
            unet=_unet(time_cond_proj_dim=32),
            scheduler=diffusers.LCMScheduler.from_config(_scheduler().config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    else:
        raise AssertionError(kind)
    pipe.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def pipeline_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each kind of tiny pipeline, built on first use and shared by the module."""

    class Folders(dict[str, Path]):
        def __missing__(self, kind: str) -> Path:
            self[kind] = _build(tmp_path_factory.mktemp("diffusers") / f"tiny-{kind}", kind)
            return self[kind]

    return Folders()


@pytest.fixture(scope="module")
def sd_dir(pipeline_dirs: dict[str, Path]) -> Path:
    return pipeline_dirs["sd"]


@pytest.fixture(scope="module")
def model(sd_dir: Path) -> ImageModel:
    built = create_model("diffusers", path=str(sd_dir))
    built.setup("cpu")
    return built


def _requests(seeds: tuple[int, ...] = (1, 2), steps: int = 3) -> list[RenderRequest]:
    return [
        RenderRequest(prompt=PROMPTS[i % 2], seed=seed, steps=steps, width=SIZE, height=SIZE)
        for i, seed in enumerate(seeds)
    ]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(_pixels(a), _pixels(b))


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("kind", "scheduler"),
    [("sd", None), ("sd", "EulerDiscreteScheduler"), ("sdxl", None), ("lcm", None)],
)
def test_the_stepwise_loop_reproduces_the_pipelines_own_call(
    pipeline_dirs: dict[str, Path], kind: str, scheduler: str | None
) -> None:
    """Taking the loop apart changes nothing: one request renders the same pixels as
    calling the diffusers pipeline itself with the same seed and settings."""
    import diffusers

    folder = pipeline_dirs[kind]
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    options: dict[str, Any] = {"path": str(folder)}
    if scheduler is not None:
        options["scheduler"] = scheduler
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    model = create_model("diffusers", **options)
    model.setup("cpu")

    ours = render(model, [RenderRequest("a cat", seed=7, steps=3, width=SIZE, height=24)])
    theirs = pipe(
        "a cat",
        num_inference_steps=3,
        width=SIZE,
        height=24,
        generator=torch.Generator("cpu").manual_seed(7),
    ).images[0]
    assert _same(ours[0].image, theirs)


def test_renders_a_batch_deterministically_through_the_registry(model: ImageModel) -> None:
    assert isinstance(model, ImageModel)
    assert model.can_edit is False
    assert model.native_size == SAMPLE_SIZE * 2

    first = render(model, _requests())
    assert len(first) == 2
    for result in first:
        assert isinstance(result.image, Image.Image)
        assert result.image.size == (SIZE, SIZE)
        assert result.image.mode == "RGB"
    assert not _same(first[0].image, first[1].image)

    again = render(model, _requests())
    assert all(_same(a.image, b.image) for a, b in zip(first, again, strict=True))

    other = render(model, _requests(seeds=(3, 4)))
    assert not _same(first[0].image, other[0].image)
    assert not _same(first[1].image, other[1].image)


@pytest.mark.parametrize(
    "scheduler",
    [
        None,  # the folder's PNDM: numpy tables and a model-output history
        "DDIMScheduler",
        "EulerAncestralDiscreteScheduler",  # draws fresh noise every step
        "DPMSolverMultistepScheduler",  # multistep history and lower-order warm-up
        "HeunDiscreteScheduler",  # second order: two loop iterations per step
        "UniPCMultistepScheduler",  # predictor-corrector history
        "DPMSolverSinglestepScheduler",  # rewrites its own config for odd step counts
    ],
)
def test_resuming_a_checkpoint_matches_an_uninterrupted_run(
    sd_dir: Path, scheduler: str | None
) -> None:
    options: dict[str, Any] = {"path": str(sd_dir)}
    if scheduler is not None:
        options["scheduler"] = scheduler
    model = create_model("diffusers", **options)
    model.setup("cpu")
    # Different step counts in one batch, so one request is further along than the other.
    requests = [
        RenderRequest(prompt="a cat", seed=5, steps=3, width=SIZE, height=SIZE),
        RenderRequest(prompt="a dog", seed=6, steps=4, width=SIZE, height=SIZE),
    ]
    expected = render(model, requests)

    state = model.start(requests)
    for _ in range(2):
        state = model.step(state)
    data = model.save_state(state)
    assert isinstance(data, bytes)

    # Resume on a second instance, as a different worker would.
    other = create_model("diffusers", **options)
    other.setup("cpu")
    resumed = other.load_state(data, requests)
    assert (resumed.step, resumed.total_steps) == (state.step, state.total_steps)
    while resumed.step < resumed.total_steps:
        resumed = other.step(resumed)
    # Saving did not disturb the original, which also finishes identically.
    while state.step < state.total_steps:
        state = model.step(state)

    for want, got, kept in zip(expected, other.finish(resumed), model.finish(state), strict=True):
        assert _same(want.image, got.image)
        assert _same(want.image, kept.image)
    for a, b in zip(resumed.items, state.items, strict=True):  # type: ignore[attr-defined]
        assert torch.equal(a.latents, b.latents)


def test_previews_show_the_current_estimate(model: ImageModel) -> None:
    requests = [RenderRequest(prompt="a cat", seed=9, steps=2, width=SIZE, height=24)]
    state = model.start(requests)
    assert model.preview(state, 0) is None  # nothing estimated before the first step
    state = model.step(state)
    preview = model.preview(state, 0)
    assert isinstance(preview, Image.Image)
    assert preview.size == (SIZE, 24)
    while state.step < state.total_steps:
        state = model.step(state)
    final = model.finish(state)[0].image
    last = model.preview(state, 0)
    assert last is not None and _same(last, final)
    with pytest.raises(IndexError):
        model.preview(state, 1)


def test_a_batch_may_mix_sizes_and_step_counts(model: ImageModel) -> None:
    tall = RenderRequest(prompt="a dog", seed=4, steps=4, width=24, height=40)
    requests = [RenderRequest(prompt="a cat", seed=3, steps=2, width=SIZE, height=SIZE), tall]
    results = render(model, requests)
    assert [r.image.size for r in results] == [(SIZE, SIZE), (24, 40)]
    # Batching changes float rounding at most, never which image a request gets.
    alone = render(model, [tall])[0].image
    assert np.abs(_pixels(alone) - _pixels(results[1].image)).max() <= 2


def test_odd_sizes_are_rendered_close_and_resized_exactly(model: ImageModel) -> None:
    result = render(model, [RenderRequest(prompt="a cat", seed=1, steps=1, width=33, height=7)])
    assert result[0].image.size == (33, 7)


def test_a_checkpoint_only_resumes_its_own_requests(model: ImageModel) -> None:
    state = model.step(model.start(_requests()))
    data = model.save_state(state)
    with pytest.raises(ModelInputError, match="different requests"):
        model.load_state(data, _requests(seeds=(1, 99)))
    with pytest.raises(ModelInputError, match="holds 2 requests"):
        model.load_state(data, _requests(seeds=(1,)))
    with pytest.raises(ValueError, match="checkpoint"):
        model.load_state(b"not a checkpoint", _requests())


def test_edit_requests_are_refused(model: ImageModel) -> None:
    source = Image.new("RGB", (SIZE, SIZE))
    edit = RenderRequest(prompt="make it blue", seed=1, width=SIZE, height=SIZE, source=source)
    with pytest.raises(ModelInputError, match="cannot edit"):
        model.start([edit])
    with pytest.raises(ModelInputError, match="steps"):
        model.start([RenderRequest(prompt="a cat", steps=0)])


def test_a_missing_or_wrong_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a path"):
        create_model("diffusers")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_model("diffusers", path=str(tmp_path / "nowhere")).setup("cpu")
    with pytest.raises(FileNotFoundError, match=r"model_index\.json"):
        create_model("diffusers", path=str(tmp_path)).setup("cpu")
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "FluxPipeline", "transformer": ["diffusers", "X"]})
    )
    with pytest.raises(ValueError, match="no UNet"):
        create_model("diffusers", path=str(tmp_path)).setup("cpu")


def test_without_the_extra_setup_says_what_to_install(
    sd_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    model = create_model("diffusers", path=str(sd_dir))  # building needs no diffusers
    with pytest.raises(ImportError, match=r"pip install 'daguerre\[diffusers\]'"):
        model.setup("cpu")


def test_importing_the_backend_does_not_import_diffusers() -> None:
    code = (
        "import sys, daguerre.models.diffusers; "
        "print('diffusers' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]


def test_sdxl_pipelines_render_and_resume(pipeline_dirs: dict[str, Path]) -> None:
    model = create_model("diffusers", path=str(pipeline_dirs["sdxl"]))
    model.setup("cpu")
    requests = [
        RenderRequest(prompt="a cat", seed=1, steps=3, width=SIZE, height=SIZE),
        RenderRequest(prompt="a dog", seed=2, steps=3, width=SIZE, height=SIZE),
    ]
    expected = render(model, requests)
    assert [r.image.size for r in expected] == [(SIZE, SIZE)] * 2

    state = model.step(model.start(requests))
    resumed = model.load_state(model.save_state(state), requests)
    while resumed.step < resumed.total_steps:
        resumed = model.step(resumed)
    for want, got in zip(expected, model.finish(resumed), strict=True):
        assert _same(want.image, got.image)


# ---------------------------------------------------------------------- continuous batching


def _staggered_requests() -> dict[str, list[RenderRequest]]:
    """The requests of each state in the staggered run, by name."""
    return {
        "A": [RenderRequest("a cat", seed=11, steps=5, width=SIZE, height=SIZE)],
        # Fewer steps, so it leaves while A runs on.
        "B": [RenderRequest("a dog", seed=12, steps=2, width=SIZE, height=SIZE)],
        # One state of two requests: another size (its own UNet group) and step count.
        "C": [
            RenderRequest("a dog", seed=13, steps=4, width=24, height=40),
            RenderRequest("a cat", seed=14, steps=3, width=SIZE, height=SIZE),
        ],
    }


# B joins after A has done two steps, C one tick later: from then on the 32x32 UNet batch
# holds A, B and C's second request, each at a different step (3, 1 and 0).
ARRIVALS = {0: "A", 2: "B", 3: "C"}


def _run_staggered(model: ImageModel) -> tuple[dict[str, Any], dict[str, int]]:
    """Drive the states the way the worker's engine does: one running set, one
    ``step_many`` per tick, states joining at their arrival tick and leaving as soon
    as they finish. Returns each state's final state and the tick it left at."""
    requests = _staggered_requests()
    running: dict[str, Any] = {}
    finished: dict[str, Any] = {}
    left_at: dict[str, int] = {}
    tick = 0
    while running or tick <= max(ARRIVALS):
        if tick in ARRIVALS:
            name = ARRIVALS[tick]
            running[name] = model.start(requests[name])
        names = list(running)
        stepped = model.step_many([running[name] for name in names])
        for name, state in zip(names, stepped, strict=True):
            running[name] = state
            if state.step >= state.total_steps:
                finished[name] = running.pop(name)
                left_at[name] = tick
        tick += 1
    return finished, left_at


@pytest.mark.parametrize(
    ("kind", "scheduler"),
    [
        ("sd", None),  # PNDM: integer timesteps, one of them run twice
        ("sd", "EulerAncestralDiscreteScheduler"),  # float timesteps, fresh noise per step
        ("sdxl", None),  # added conditioning (pooled embeddings, per-size time ids)
        ("lcm", None),  # guidance as a per-row embedding; LCM draws noise per step
    ],
)
def test_staggered_step_many_matches_each_request_rendered_alone(
    pipeline_dirs: dict[str, Path], kind: str, scheduler: str | None
) -> None:
    """Continuous batching: requests joining and leaving a running set at different
    steps get the images they get alone.

    Compared on final latents with a tight tolerance, and on pixels: batching may change
    float rounding in the UNet's kernels (a wider GEMM can block its sums differently),
    so bit equality is not promised. On CPU the latents (values up to ~60 for LCM) differ
    by a few float32 ulps (<= 2e-5 seen); the tolerance leaves room for other CPUs'
    kernels, while any mix-up of timesteps, conditioning or noise between rows moves the
    latents by whole units, orders of magnitude beyond it."""
    options: dict[str, Any] = {"path": str(pipeline_dirs[kind])}
    if scheduler is not None:
        options["scheduler"] = scheduler
    model = create_model("diffusers", **options)
    model.setup("cpu")
    finished, left_at = _run_staggered(model)

    # The scenario happened as intended: B left early, while A was still running.
    assert left_at["B"] < left_at["A"] < left_at["C"]

    for name, requests in _staggered_requests().items():
        batched = finished[name]
        images = model.finish(batched)
        for index, request in enumerate(requests):
            alone = model.start([request])
            while alone.step < alone.total_steps:
                alone = model.step(alone)
            want = model.finish(alone)[0].image
            got = images[index].image
            assert got.size == want.size == (request.width, request.height)
            assert np.abs(_pixels(got) - _pixels(want)).max() <= 2, (name, index)
            a, b = batched.items[index].latents, alone.items[0].latents
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-4), (name, index, (a - b).abs().max())
    # Different seeds really are different images, so the comparisons above can fail.
    a_image = model.finish(finished["A"])[0].image
    c_image = model.finish(finished["C"])[1].image
    assert np.abs(_pixels(a_image) - _pixels(c_image)).max() > 2


def test_step_many_shares_one_unet_call_across_timesteps(
    model: ImageModel, sd_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """States at different steps share one UNet pass per size; the UNet gets each
    row's own timestep; finished states are left alone."""
    import diffusers

    def request(seed: int, steps: int = 4, width: int = SIZE) -> RenderRequest:
        return RenderRequest("a cat", seed=seed, steps=steps, width=width, height=SIZE)

    # A state carries its own guidance: one started with CFG off brings one UNet row, and
    # still shares the pass with CFG rows (the same weights, loaded once more).
    no_cfg = create_model("diffusers", path=str(sd_dir), guidance_scale=1.0)
    no_cfg.setup("cpu")
    ahead = model.start([request(1)])
    middle = no_cfg.start([request(2)])  # no CFG: one row
    fresh = model.start([request(3)])
    wide = model.start([request(4, width=48)])  # another size: a UNet batch of its own
    done = model.start([request(5, steps=1)])
    # PNDM runs one timestep twice (its warm-up): loop indices 3, 1 and 0 are three
    # different timesteps.
    for _ in range(3):
        ahead = model.step(ahead)
    middle = model.step(middle)
    while done.step < done.total_steps:
        done = model.step(done)
    done_latents = done.items[0].latents.clone()  # type: ignore[attr-defined]
    before = [s.step for s in (ahead, middle, fresh, wide, done)]

    calls: list[tuple[tuple[int, ...], list[float]]] = []
    forward = diffusers.UNet2DConditionModel.forward

    def counting(self: Any, sample: torch.Tensor, timestep: Any, *args: Any, **kw: Any) -> Any:
        calls.append((tuple(sample.shape), torch.as_tensor(timestep).flatten().tolist()))
        return forward(self, sample, timestep, *args, **kw)

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "forward", counting)
    states = [ahead, middle, fresh, done, wide]
    stepped = model.step_many(states)

    assert [s.step for s in stepped] == [*(n + 1 for n in before[:3]), before[4], before[3] + 1]
    assert torch.equal(stepped[3].items[0].latents, done_latents)  # type: ignore[attr-defined]
    assert len(calls) == 2
    (shape, timesteps), (wide_shape, _) = calls
    # Two CFG rows for `ahead` and `fresh`, one for `middle`, all at 32x32.
    assert shape[0] == 5 and wide_shape[0] == 2
    assert shape[2:] != wide_shape[2:]
    schedule = [float(t) for t in ahead.items[0].scheduler.timesteps]  # type: ignore[attr-defined]
    assert timesteps == [schedule[3], schedule[3], schedule[1], schedule[0], schedule[0]]
    assert len(set(timesteps)) == 3


def test_state_bytes_counts_the_tensors_a_state_holds(model: ImageModel) -> None:
    one = model.start(_requests(seeds=(1,)))
    three = model.start(_requests(seeds=(1, 2, 3)))
    held = model.state_bytes(one)
    # At least the latents and both prompt embeddings (CFG) of its one request.
    item = one.items[0]  # type: ignore[attr-defined]
    floor = sum(t.numel() * t.element_size() for t in (item.latents, item.cond, item.uncond))
    assert held >= floor > 0
    assert model.state_bytes(three) > 2 * held
    # PNDM keeps a history of model outputs, so a state grows as it runs.
    assert model.state_bytes(model.step(model.step(one))) > held


def test_batch_images_is_an_option(sd_dir: Path) -> None:
    assert create_model("diffusers", path=str(sd_dir)).batch_images == 8
    assert create_model("diffusers", path=str(sd_dir), batch_images="32").batch_images == 32
    with pytest.raises(ValueError, match="batch_images"):
        create_model("diffusers", path=str(sd_dir), batch_images=0)


def test_quality_scales_the_default_steps(sd_dir: Path) -> None:
    """Without ``steps``, low takes half the default's steps and high twice; a request's
    own ``steps`` wins over its quality."""
    model = create_model("diffusers", path=str(sd_dir), steps=4)
    model.setup("cpu")

    def denoising(**fields: Any) -> int:
        request = RenderRequest(prompt="a cat", seed=1, width=SIZE, height=SIZE, **fields)
        return int(model.start([request]).total_steps)

    extra = denoising(steps=4) - 4  # a state's steps include its decode
    assert denoising() - extra == denoising(quality="medium") - extra == 4
    assert denoising(quality="low") - extra == 2
    assert denoising(quality="high") - extra == 8
    assert denoising(quality="high", steps=3) - extra == 3
