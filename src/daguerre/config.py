"""One place for every setting. Each can be set from the environment as
``DAGUERRE_<NAME>``, structured ones as JSON (a JSON value replaces the whole default),
e.g. ``DAGUERRE_POOLS='{"chat": {}, "api": {"batch_images": 32}}'``. Every setting has a
default that works on a laptop with nothing else installed (`daguerre up`)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse as parse_limit
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from daguerre import priority as priorities
from daguerre.access import AccessConfig, TierSettings, load_access

# The most steps any request may ask for, whatever the model.
MAX_STEPS = 1000
# The steps each shipped backend takes, as data (the gateway imports no model): the
# built-in model reveals its 64 tokens in at most 64 steps (models/builtin/backend.py
# refuses more); a diffusers scheduler takes any count, and past 150 nothing improves.
STEP_RANGES: dict[str, tuple[int, int]] = {"builtin": (1, 64), "diffusers": (1, 150)}


class ModelCatalogEntry(BaseModel):
    """What the gateway may accept for one model, without importing the model.

    ``sizes`` are square edge lengths in pixels; ``auto_size`` is what ``size="auto"``
    means. Keeping this as data lets the gateway validate requests with no torch.
    """

    sizes: list[int] = Field(default_factory=lambda: [64, 128, 256, 512, 1024])
    auto_size: int = 512
    # The ``steps`` a request may ask for, [least, most]: the gateway refuses others
    # with a 400 rather than accept a job the model would fail. None: the backend's
    # own range when the entry is named after it (STEP_RANGES), else 1..1000.
    steps: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _auto_is_supported(self) -> ModelCatalogEntry:
        if self.auto_size not in self.sizes:
            raise ValueError(f"auto_size {self.auto_size} is not one of sizes {self.sizes}")
        if self.steps is not None and not 1 <= self.steps[0] <= self.steps[1]:
            raise ValueError(f"steps {list(self.steps)} is not a range [least, most] from 1")
        return self

    def step_range(self, model: str) -> tuple[int, int]:
        """The steps ``model`` (this entry's name in the catalog) takes."""
        return self.steps or STEP_RANGES.get(model, (1, MAX_STEPS))

    def size_names(self) -> list[str]:
        return ["auto", *(f"{s}x{s}" for s in self.sizes)]


class PoolSettings(BaseModel):
    """An isolated slice of compute: its own Temporal task queue and worker processes."""

    task_queue: str = ""  # "": daguerre-<pool name>
    # The batch budget: images one worker process steps together in one forward pass
    # (a job of n images counts n). None: the model's own, measured where its
    # throughput stops growing (builtin: 64). See docs/performance.md for sizing it.
    batch_images: int | None = Field(default=None, ge=1)
    # While a render at ``express_priority`` or better runs, the batch holds at most this
    # many images, pausing lower-priority ones to make room: on a CPU every image added
    # to a step slows every image of it (paid ones included), while an accelerator
    # takes a bigger batch in about the same time. None: the model's own advice
    # (builtin: 16), or none at all.
    express_batch_images: int | None = Field(default=None, ge=1)
    # Renders a worker process holds beyond its batch budget, waiting to join at the
    # next step: its Temporal activity slots are the budget plus this room.
    waiting_room: int = Field(default=32, ge=0)
    # Paused renders (preempted by higher-priority work) keep their state in memory up
    # to this many MiB per worker process; past it the worst-ranked are written out as
    # checkpoints and read back when they resume.
    paused_memory_mb: int = Field(default=256, ge=0)
    # Worker processes `daguerre up` starts for this pool.
    processes: int = Field(default=1, ge=0)
    # Admission: past this many unfinished jobs only tiers with ``admit_past_cap`` get in
    # (the hard cap that protects memory and the database).
    max_backlog: int = Field(default=2000, ge=1)
    # Degraded mode switches on at this backlog and off again below half of it.
    degrade_backlog: int = Field(default=200, ge=1)
    # Admission pace: tiers without ``admit_past_cap`` get in at most this many times
    # the pool's measured throughput per second (a second of it as burst), so that a
    # surge's first second cannot pour a whole cap of work onto Temporal at once. Off
    # (0) by default: it would refuse a quiet pool's small bursts too. Operators turn it
    # on for a launch or an incident, live: `daguerre admin pace POOL 2`.
    admit_pace: float = Field(default=0.0, ge=0)
    # Jobs at this Temporal priority key or better (smaller; the shipped plus and pro)
    # run, workflow and render, on the pool's express queue, which each worker serves
    # with slots of its own, so a backlog of free work never stands between them and a
    # worker. 0: no express lane. See daguerre/priority.py.
    express_priority: int = Field(default=priorities.EXPRESS, ge=0, le=priorities.LOWEST)
    # The scheduler pauses lower-priority renders (state kept) to make room in the batch
    # for higher-priority ones that wait: see workers/scheduler.py.
    preemption: bool = True


def _default_pools() -> dict[str, PoolSettings]:
    return {"chat": PoolSettings(), "api": PoolSettings()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DAGUERRE_",
        extra="ignore",
    )

    # --- places -------------------------------------------------------------------------
    data_dir: Path = Path(".daguerre")
    database_url: str | None = None  # None: SQLite file <data_dir>/daguerre.db (WAL)
    blob_dir: Path | None = None  # None: <data_dir>/blobs

    # --- gateway ------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    # Base for image URLs handed to clients; None: the URL the request came in on.
    public_url: str | None = None
    # Signs image URLs. None: a random secret kept in <data_dir>/url-signing.key, which is
    # fine for one gateway; several gateways must share one value.
    url_signing_secret: SecretStr | None = None
    image_url_ttl_s: int = 3600
    # Interactive API docs (Swagger UI) at /docs, from assets the gateway serves itself.
    # Off by default: the docs page shares its origin with the chat page, which keeps
    # the API key in the browser. /openapi.json is served either way.
    api_docs: bool = False
    max_body_bytes: int = 1_000_000
    # How long POST /v1/images/generations waits for its job before answering 503.
    sync_wait_timeout_s: float = 900.0
    # The longest a gateway's progress poller waits between two looks at the rows it
    # follows (it looks every 5 ms for one job, a quarter of a millisecond more per
    # job, up to this; see store/progress.py).
    events_poll_interval_s: float = Field(default=0.15, gt=0)
    # POST /v1/images/edits: its body limit (it carries images), how many images, and
    # the most pixels one may have (checked before it is decoded: decompression bombs).
    max_upload_bytes: int = 25_000_000
    max_upload_images: int = Field(default=16, ge=1)
    max_upload_pixels: int = Field(default=4096 * 4096, ge=1)
    # Progress events through Redis pub/sub (e.g. redis://host:6379/0) instead of polling
    # the job row; the row stays the record, so a late client still gets the state.
    redis_url: str | None = None
    # With Redis: how often a watcher still reads the row, for changes nobody announced.
    redis_fallback_poll_s: float = 1.0

    # How old the pool backlog that admission decides on may be (one grouped count per
    # pool per period, plus the jobs this gateway admitted since); 0: count every time.
    admission_cache_s: float = Field(default=0.25, ge=0)
    # How long a gateway trusts an API key's account (and tier) once read: a tier change
    # reaches it within this time. 0: read the database for every request.
    auth_cache_s: float = Field(default=5.0, ge=0)
    # Server-Sent Event streams one account may hold open on one gateway at once (job
    # events, streamed generations and edits); past it a new one is a 429
    # (too_many_streams). 0: no cap.
    max_streams_per_account: int = Field(default=16, ge=0)
    # Per account, the requests that start no job: reads (jobs, events, images,
    # conversations), cancels and conversation writes; counted like the tiers' limits
    # (memory, or Redis with redis_url). None: no limit.
    read_rate_limit: str | None = "600/minute"
    # The orphan reconciler (gateway/reconciler.py): every this many seconds (and at
    # start-up) a gateway starts, or fails with a reason, the queued and deferred jobs at
    # least orphan_min_age_s old that have no workflow (their gateway died between
    # recording and starting them). 0: never. The age stays above the engine's retries
    # of one start (~45 s), so a submit still under way is left alone.
    orphan_sweep_s: float = Field(default=60.0, ge=0)
    orphan_min_age_s: float = Field(default=60.0, ge=0)

    # --- engine (Temporal) --------------------------------------------------------------
    temporal_address: str | None = None  # None: `daguerre up` runs a local dev server
    temporal_port: int = 7233  # port of that local dev server
    # Where that local dev server serves its Prometheus metrics (RPCs, persistence,
    # task queues); None: a random free port, which nobody can find to scrape.
    temporal_metrics_port: int | None = None
    temporal_namespace: str = "default"
    # A safety net for tests; production leaves it unset so a backlog never times out.
    workflow_execution_timeout_s: float | None = None
    render_max_attempts: int = Field(default=5, ge=1)
    retry_initial_interval_s: float = 1.0
    render_attempt_timeout_s: float = 1800.0
    # How soon a render whose worker died (or lost Temporal) is taken over by another
    # worker: the workflow task timeout of a job (its render runs inside that task), and
    # for renders that are regular activities, their heartbeat timeout. At most 120.
    heartbeat_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Preemption (pools with ``preemption``): how many times one render attempt may
    # pause for higher-priority work before it keeps its place to the end.
    max_preemptions: int = Field(default=10, ge=0)
    # Temporal's workflow sandbox. "strict" re-imports the workflow modules for every
    # workflow run, which catches non-deterministic module-level code and calls (the wall
    # clock, randomness, I/O); measured under a surge, that was most of a worker's CPU.
    # "fast" imports them once. The tests run the workflow under "strict".
    workflow_sandbox: Literal["strict", "fast"] = "fast"

    # --- pools and products -------------------------------------------------------------
    pools: dict[str, PoolSettings] = Field(default_factory=_default_pools)
    product_pools: dict[str, str] = Field(default_factory=lambda: {"chat": "chat", "api": "api"})
    # Tiers (priority, fairness weight, limits, wait budget, render defaults) and feature
    # flags: a TOML file (None: the shipped daguerre/tiers.toml), or DAGUERRE_ACCESS as
    # JSON of the same shape. Operators override them live through /admin.
    tiers_file: Path | None = None
    access: AccessConfig | None = None
    # The key for /admin and `daguerre admin`; API keys with the "admin" scope
    # (`daguerre keys create --admin`) may use those too.
    admin_key: SecretStr | None = None
    # Whether GET /metrics needs a bearer key: "on", "off", or "auto" (on unless the
    # gateway's host is a loopback address). Accepted: metrics_key, admin_key, or an
    # API key with the "admin" scope.
    metrics_auth: Literal["auto", "on", "off"] = "auto"
    # A key for Prometheus alone (it can read /metrics, nothing else).
    metrics_key: SecretStr | None = None
    # --- webhooks (workers/webhooks.py, webhook_guard.py) ---------------------------------
    # The server-wide signing secret of older deployments. Each account now signs with
    # its own (GET /v1/webhooks/secret); this one still signs for accounts that have
    # none yet, and beside an account's first own secret for webhook_secret_grace_s,
    # so existing receivers keep working while they move over. None: not used.
    webhook_secret: SecretStr | None = None
    # How long a rotated-out account secret (or the server's, beside an account's first
    # own one) still signs, beside the new one.
    webhook_secret_grace_s: float = Field(default=86_400.0, ge=0)
    # Destinations webhooks may reach although they are not public addresses: host names
    # and CIDR blocks (e.g. "hooks.internal,10.1.0.0/16"). Comma separated in the
    # environment. Empty: the public internet only.
    webhook_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Deliveries one worker process runs at once, on a Temporal worker of their own (so
    # they never hold up a job's bookkeeping), and at most this many to one destination.
    webhook_concurrency: int = Field(default=16, ge=1)
    webhook_max_per_destination: int = Field(default=4, ge=1)
    # The longest one delivery may take, all told (connecting takes at most 3 s of it).
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=25)
    # After this many consecutive failures a destination is not called for
    # webhook_cooloff_s (its deliveries wait, and retry after it).
    webhook_breaker_failures: int = Field(default=5, ge=1)
    webhook_cooloff_s: float = Field(default=60.0, ge=0)
    # How often a gateway reads the operators' live overrides from the database.
    controls_refresh_s: float = Field(default=1.0, gt=0)

    # --- models and rendering -----------------------------------------------------------
    model: str = "builtin"  # registry name the workers load
    device: str = "cpu"  # passed to the model's setup()
    # Keyword arguments for the backend's constructor, e.g. {"threads": 1} for builtin:
    # two CPU workers on two cores each wanting every core slows both down badly.
    model_options: dict[str, Any] = Field(default_factory=dict)
    # Modules a worker imports before building the model, e.g. to register a test backend
    # in daguerre.models.registry.BACKENDS. Comma separated in the environment.
    model_plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    models: dict[str, ModelCatalogEntry] = Field(
        default_factory=lambda: {"builtin": ModelCatalogEntry()}
    )
    # The niceness of a worker's engine process (its model): the model is throughput
    # work, while the worker's Temporal client, the gateway and Temporal itself are
    # latency work; on a machine the model saturates (a CPU model), this gives them the
    # CPU first. 0: the same as the rest. Measured in bench/surge.py (docs/performance.md).
    engine_niceness: int = Field(default=10, ge=0, le=19)
    # Seconds of rendering between two checkpoints of a render (at the first step
    # boundary after that): what a retry on another worker would otherwise redo. A
    # render shorter than this writes none.
    checkpoint_interval_s: float = Field(default=1.0, ge=0)
    # At most one progress update (job row + preview image) per this many seconds:
    # watchers poll every ~150 ms, so writing every step of a fast model is wasted work.
    progress_interval_s: float = Field(default=0.1, ge=0)

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        # From the environment: a JSON list, or comma separated.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("read_rate_limit")
    @classmethod
    def _read_limit(cls, value: str | None) -> str | None:
        if value is None or not value.strip() or value.strip().lower() == "none":
            return None  # DAGUERRE_READ_RATE_LIMIT= (empty) switches it off
        try:
            parse_limit(value)
        except ValueError as err:
            raise ValueError(f"{value!r} is not a rate limit such as '600/minute'") from err
        return value

    @field_validator("model_plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _pools_exist(self) -> Settings:
        for name, pool in self.pools.items():
            if not pool.task_queue:
                pool.task_queue = f"daguerre-{name}"
        unknown = {p for p in self.product_pools.values() if p not in self.pools}
        if unknown:
            raise ValueError(f"product_pools names unknown pools {sorted(unknown)}")
        if not self.pools:
            raise ValueError("at least one pool is needed")
        if self.access is None:
            self.access = load_access(self.tiers_file)
        if not self.access.tiers:
            raise ValueError("at least one tier is needed")
        return self

    # --- derived ------------------------------------------------------------------------
    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'daguerre.db').resolve()}"

    @cached_property
    def blobs_path(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    def pool_for_product(self, product: str) -> str:
        """The pool serving ``product``; unknown products share the first pool."""
        return self.product_pools.get(product) or next(iter(self.pools))

    @property
    def tiers(self) -> dict[str, TierSettings]:
        assert self.access is not None  # filled in by the validator
        return self.access.tiers

    def tier(self, name: str) -> TierSettings:
        """A tier's configuration; an unknown tier is treated as the lowest-priority one."""
        tiers = self.tiers
        return tiers.get(name) or max(tiers.values(), key=lambda t: t.priority)

    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.port}"
