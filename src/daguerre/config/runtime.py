"""The settings sections for where things live and how each process runs: places,
gateway, progress events, engine (Temporal), launcher, worker and models.

Each section is a plain pydantic model used as a mixin of `Settings`, so its fields stay
flat: ``DAGUERRE_<NAME>`` in the environment and ``settings.<name>`` in the code. A field's
``description`` is its documentation (docs/configuration.md is generated from it); comments
keep the *why* that an operator does not need.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from daguerre.config.catalog import OPENAI_MODEL_NAMES, ModelCatalogEntry


class PlacesSection(BaseModel):
    """Places: where the data lives."""

    data_dir: Path = Field(
        default=Path(".daguerre"),
        description="Everything local: database, blobs, Temporal's database, secrets.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database. None: the SQLite file "
        "`<data_dir>/daguerre.db` (WAL).",
    )
    blob_dir: Path | None = Field(
        default=None,
        description="Folder for images, previews and checkpoints. None: `<data_dir>/blobs`. "
        "Unused when `blob_url` names an object store.",
    )
    log_level: str = Field(
        default="INFO",
        description="Log level of the gateway, worker and engine processes (DEBUG, INFO, "
        "WARNING, ERROR).",
    )


class GatewaySection(BaseModel):
    """Gateway: the HTTP service."""

    host: str = Field(default="127.0.0.1", description="Where the gateway listens.")
    port: int = Field(default=8000, description="The gateway's port.")
    public_url: str | None = Field(
        default=None,
        description="Base for image URLs handed to clients (set it behind a proxy). None: the "
        "URL the request came in on.",
    )
    url_signing_secret: SecretStr | None = Field(
        default=None,
        description="Signs image URLs. None: a random secret kept in "
        "`<data_dir>/url-signing.key`, fine for one gateway; several gateways must share one.",
    )
    image_url_ttl_s: int = Field(default=3600, description="Lifetime of a signed image URL.")
    # Off by default: the docs page shares its origin with the chat page, which keeps the
    # API key in the browser.
    api_docs: bool = Field(
        default=False,
        description="Interactive API docs (Swagger UI) at /docs, from assets the gateway "
        "serves itself. /openapi.json is served either way.",
    )
    max_body_bytes: int = Field(default=1_000_000, description="Larger request bodies get 413.")
    sync_wait_timeout_s: float = Field(
        default=900.0,
        description="How long POST /v1/images/generations waits for its job before a 503.",
    )
    # Pixels are checked before an image is decoded: decompression bombs.
    max_upload_bytes: int = Field(
        default=25_000_000, description="Body limit of POST /v1/images/edits (it carries images)."
    )
    max_upload_images: int = Field(default=16, ge=1, description="Images one edit may carry.")
    max_upload_pixels: int = Field(
        default=4096 * 4096, ge=1, description="The most pixels one uploaded image may have."
    )
    # The age stays above the engine's retries of one start (~45 s), so a submit still under
    # way is left alone.
    orphan_sweep_s: float = Field(
        default=60.0,
        ge=0,
        description="Every this many seconds (and at start-up) a gateway starts, or fails with "
        "a reason, the queued and deferred jobs at least orphan_min_age_s old that have no "
        "workflow (their gateway died between recording and starting them; "
        "gateway/services/reconciler.py). 0: never.",
    )
    orphan_min_age_s: float = Field(
        default=60.0, ge=0, description="How old an orphan must be before the sweep takes it."
    )
    retention_sweep_s: float = Field(
        default=300.0,
        ge=0,
        description="Every this many seconds (and at start-up) a gateway deletes the blobs "
        "that have outlived their use: finished jobs' leftover checkpoints, and the images, "
        "uploads and previews of jobs past their tier's retention_days "
        "(gateway/services/retention.py). 0: never.",
    )
    # Past the longest a finished job's last attempt may still be deleting its own.
    checkpoint_grace_s: float = Field(
        default=120.0,
        ge=0,
        description="How long after a job ends the retention sweep deletes the checkpoints "
        "its attempts left behind.",
    )


class ProgressSection(BaseModel):
    """Progress events: how renders report progress and how watchers follow it."""

    events_poll_interval_s: float = Field(
        default=0.15,
        gt=0,
        description="The longest a gateway's progress poller waits between two looks at the "
        "rows it follows (it looks every 5 ms for one job, a quarter of a millisecond more "
        "per job, up to this; progress/polling.py).",
    )
    # The row stays the record, so a late client still gets the state.
    redis_url: str | None = Field(
        default=None,
        description="Progress events through Redis pub/sub (e.g. redis://host:6379/0) instead "
        "of polling the job row; also where rate limits are counted. None: no Redis.",
    )
    redis_fallback_poll_s: float = Field(
        default=1.0,
        description="With Redis: how often a watcher still reads the row, for changes nobody "
        "announced.",
    )
    # Redis is a shared convenience, never a single point of failure: see docs/operations.md.
    redis_outage: Literal["memory", "open", "closed"] = Field(
        default="memory",
        description="While Redis is unreachable, rate limits are counted per gateway in memory "
        '("memory"), not enforced ("open"), or every limited request is refused with a 429 '
        '("closed"). Progress falls back to reading the rows every redis_fallback_poll_s.',
    )
    redis_retry_s: float = Field(
        default=5.0,
        gt=0,
        description="After Redis failed, how long gateways and workers go without it before "
        "they try it again.",
    )
    # Watchers poll every ~150 ms, so writing every step of a fast model is wasted work.
    progress_interval_s: float = Field(
        default=0.1,
        ge=0,
        description="At most one progress update (job row + preview image) per this many seconds.",
    )


class EngineSection(BaseModel):
    """Engine: Temporal, and how jobs run on it."""

    temporal_address: str | None = Field(
        default=None,
        description="host:port of the Temporal frontend. None: the local dev server "
        "`daguerre up` runs (at temporal_port).",
    )
    temporal_namespace: str = Field(
        default="default",
        description="The Temporal namespace (on Temporal Cloud: `<namespace>.<account id>`).",
    )
    # Temporal Cloud, or a self-hosted cluster behind TLS: engine/tls.py turns these into
    # the SDK's TLSConfig and api_key; _temporal_tls_fits checks them at start-up.
    temporal_tls: bool | None = Field(
        default=None,
        description="Speak TLS to Temporal. None: on when temporal_api_key or any "
        "temporal_tls_* setting is set, off otherwise.",
    )
    temporal_tls_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the Temporal frontend's certificate. "
        "None: the system's trusted roots (right for Temporal Cloud).",
    )
    temporal_tls_cert_file: Path | None = Field(
        default=None,
        description="PEM client certificate for mutual TLS (Temporal Cloud's certificate "
        "auth, or a cluster that asks for client certificates); needs "
        "temporal_tls_key_file.",
    )
    temporal_tls_key_file: Path | None = Field(
        default=None, description="PEM private key of temporal_tls_cert_file."
    )
    temporal_tls_server_name: str | None = Field(
        default=None,
        description="The name the frontend's certificate is checked against (and sent as "
        "SNI), when it is not temporal_address's host (e.g. an address by IP).",
    )
    temporal_api_key: SecretStr | None = Field(
        default=None,
        description="A Temporal Cloud API key, sent as a bearer token on every call; turns TLS on.",
    )
    # Production leaves it unset so that a backlog never times out.
    workflow_execution_timeout_s: float | None = Field(
        default=None, description="A safety net for tests: a job workflow's longest life."
    )
    render_max_attempts: int = Field(default=5, ge=1, description="Attempts of one render.")
    retry_initial_interval_s: float = Field(
        default=1.0, description="The first wait between two attempts of a render."
    )
    render_attempt_timeout_s: float = Field(
        default=1800.0, description="The longest one render attempt may take."
    )
    # 10 s (Temporal's default) was most of a moved job's time (15-22 s measured). While a
    # render runs, the worker heartbeats its task at about 80% of this; the integration
    # tests run at 1-3 s on a loaded 2-core machine without spurious timeouts.
    heartbeat_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="How soon a render whose worker died (or lost Temporal) is taken over by "
        "another worker: a job's workflow task timeout (its render runs inside that task), "
        "and the heartbeat timeout of renders that are regular activities.",
    )
    max_preemptions: int = Field(
        default=10,
        ge=0,
        description="Pools with `preemption`: how many times one render attempt may pause for "
        "higher-priority work before it keeps its place to the end.",
    )
    # Measured under a surge, re-importing was most of a worker's CPU; the tests run the
    # workflow under "strict".
    workflow_sandbox: Literal["strict", "fast"] = Field(
        default="fast",
        description='Temporal\'s workflow sandbox. "strict" re-imports the workflow modules '
        "for every run, which catches non-deterministic module-level code (clock, "
        'randomness, I/O); "fast" imports them once.',
    )

    @model_validator(mode="after")
    def _temporal_tls_fits(self) -> Any:
        """A TLS setting that cannot work is a start-up error naming it, not a failed
        handshake (or a traceback) at the first job."""
        problem = temporal_tls_problem(self)
        if problem:
            raise ValueError(problem)
        return self


_TLS_FILES = ("temporal_tls_ca_file", "temporal_tls_cert_file", "temporal_tls_key_file")


def temporal_tls_problem(engine: EngineSection) -> str | None:
    """What is wrong with ``engine``'s Temporal TLS settings, or None."""
    set_names = [n for n in (*_TLS_FILES, "temporal_tls_server_name") if getattr(engine, n)]
    if engine.temporal_tls is False and (set_names or engine.temporal_api_key):
        named = ", ".join(set_names) or "temporal_api_key"
        return f"temporal_tls is false, but {named} needs TLS"
    if (engine.temporal_tls_cert_file is None) != (engine.temporal_tls_key_file is None):
        return "temporal_tls_cert_file and temporal_tls_key_file go together: set both or neither"
    uses_tls = engine.temporal_tls or set_names or engine.temporal_api_key
    if uses_tls and engine.temporal_address is None:
        return "Temporal TLS settings need temporal_address (the local dev server is plain)"
    for name in _TLS_FILES:
        path: Path | None = getattr(engine, name)
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            return f"{name}: {path} is not a readable file"
    return None


class LauncherSection(BaseModel):
    """Launcher: what `daguerre up` starts beside the service (the Temporal dev server)."""

    temporal_port: int = Field(
        default=7233, description="Port of the local Temporal dev server `daguerre up` runs."
    )
    temporal_metrics_port: int | None = Field(
        default=None,
        description="Where that dev server serves its Prometheus metrics (RPCs, persistence, "
        "task queues). None: a random free port, which nobody can find to scrape.",
    )


class WorkerSection(BaseModel):
    """Worker: how a worker process shares its machine and keeps its renders safe."""

    # The model is throughput work, while the worker's Temporal client, the gateway and
    # Temporal are latency work. Measured in bench/surge.py (docs/performance.md).
    engine_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="The niceness of a worker's engine process (its model), so that on a "
        "machine the model saturates the rest gets the CPU first. 0: the same as the rest.",
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="Seconds of rendering between two checkpoints of a render (what a retry "
        "on another worker would otherwise redo). A shorter render writes none.",
    )
    worker_report_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between two reports of a worker process to the worker registry "
        "(its slots, batch budget, renders running and measured pace), which admission reads "
        "as the pool's capacity. A report older than three intervals no longer counts.",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of a worker's health and metrics endpoint (/healthz, /readyz, "
        "/metrics). None: no endpoint. 0: a free port, logged at start. `daguerre up` gives "
        "its N-th worker process this port plus N (each 0 when 0).",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the worker's health and metrics endpoint listens on; 0.0.0.0 in "
        "a container, so that probes and Prometheus reach it.",
    )


class ModelsSection(BaseModel):
    """Models: what the workers load and what the gateway accepts for each model."""

    model: str = Field(default="builtin", description="Registry name of the model workers load.")
    device: str = Field(default="cpu", description="Passed to the model's setup().")
    # Two CPU workers on two cores each wanting every core slow each other down badly.
    model_options: dict[str, Any] = Field(
        default_factory=dict,
        description='Keyword arguments for the backend\'s constructor, e.g. {"threads": 1}.',
    )
    model_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Modules a worker imports before building the model, e.g. to register a "
        "backend in daguerre.models.registry.BACKENDS. Comma separated.",
    )
    models: dict[str, ModelCatalogEntry] = Field(
        default_factory=lambda: {"builtin": ModelCatalogEntry()},
        description="The model catalog: for each model, the sizes and steps the gateway "
        "accepts (see the catalog entry below).",
    )
    model_aliases: dict[str, str] = Field(
        default_factory=lambda: dict.fromkeys(OPENAI_MODEL_NAMES, ""),
        description="Other names a request's `model` may use, each mapped to a model of the "
        'catalog ("": the served `model`). By default OpenAI\'s image model names, so '
        "that clients written for OpenAI need no change; /v1/models lists them.",
    )

    @model_validator(mode="after")
    def _aliases_name_models(self) -> ModelsSection:
        for alias, target in self.model_aliases.items():
            if target and target not in self.models:
                known = ", ".join(sorted(self.models))
                raise ValueError(
                    f"model alias {alias!r} maps to {target!r}, which is not in the model "
                    f'catalog ({known}); map it to one of those, or to "" for the served model'
                )
        return self

    @field_validator("model_plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
